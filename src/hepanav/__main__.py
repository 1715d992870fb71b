from hepanav.cli import main

main()
