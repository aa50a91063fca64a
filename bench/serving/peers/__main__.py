from bench.serving.peers.run import main

main()
