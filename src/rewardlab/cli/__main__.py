"""``python -m rewardlab.cli ARGS`` (what ``accelerate launch -m rewardlab.cli`` runs)."""

from rewardlab.cli.app import main

main()
