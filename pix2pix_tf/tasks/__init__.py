"""Tasks: what a run reads and feeds the networks, how its tensors become pictures, and how it is served."""
