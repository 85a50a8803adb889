"""``python -m hybridgate`` runs the CLI."""

from hybridgate.cli.main import main

main()
