from shadowcanary.gateway.server import main

main()
