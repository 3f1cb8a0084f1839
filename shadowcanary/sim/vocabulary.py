"""Fixed word lists the simulator writes with. Plain English, nothing from any model."""

from __future__ import annotations

_ANSWER_WORDS = """
account action address advice agent amount answer approach area article aspect balance basis
benefit budget building business capacity case cause change channel chapter check choice
claim client code comment community company comparison component concept condition context
contract control cost count course coverage credit customer data date deadline decision
default delivery demand design detail device difference document domain draft effect effort
element energy engine entry error estimate event evidence example exchange experience factor
feature feedback field figure file filter focus format frame function goal group growth
guide habit handle history idea impact income index input insight issue item journey key
label language layer lead level limit line link list load logic margin market measure medium
memory message method metric mode model moment network note notice number object offer
option order origin outcome output owner package page panel partner path pattern payment
period phase plan platform point policy portion position practice price priority problem
process product profile program project property proposal purpose quality query question
range rate reason record region release report request resource response result review risk
role route rule sample scale schedule scope score section segment sequence series service
session setting share signal site size source space speed stage standard state status step
storage strategy stream structure style summary supply support surface system table target
task team term test theme threshold ticket time title token tool topic total track trade
traffic trend trigger type unit update usage user value version view volume window workflow
accurate active basic careful central clear common complete consistent current direct early
easy effective efficient exact final first flexible formal general global helpful important
initial large likely local main major manual minor modern natural new normal open optional
overall partial primary private proper public quick rapid ready recent regular related
relevant reliable remote safe secure separate serious short similar simple single small
specific stable steady strong typical useful valid visible adjust allow apply assign avoid
build capture choose collect compare confirm connect consider create define deliver describe
detect enable ensure explain follow improve include increase keep maintain manage monitor
move prepare provide reduce remove replace require run select send show start verify also
often usually then still already again later next only just really quite rather mostly
typically generally clearly simply directly
"""

_STOP_WORDS = """
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further
give had has have having he her here hers herself him himself his how i if in into is it its
itself just know like make me more most my myself need no nor not now of off on once only or
other our ours ourselves out over own please same she should so some such tell than that the
their theirs them themselves then there these they this those through to too under until up
use used using very want was we were what when where which while who whom why will with
would you your yours yourself yourselves
"""

# Words of simulated answers. Order matters: outputs index into it, so append only.
WORDS: tuple[str, ...] = tuple(_ANSWER_WORDS.split())
# Not worth echoing back from a prompt as a topic word.
STOP_WORDS: frozenset[str] = frozenset(_STOP_WORDS.split())

REFUSAL_TEXT = "I'm sorry, but I can't help with that request."
