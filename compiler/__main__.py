from cicompile.cli import main

main()
