from kgforge.cli import main

main()
