from ftserver.cli import main

main()
