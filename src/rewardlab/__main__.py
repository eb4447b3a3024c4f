from rewardlab.cli.app import main

main()
