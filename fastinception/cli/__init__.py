"""What the commands share: argparse value types, charts (matplotlib, optional) and progress bars (tqdm, optional)."""
