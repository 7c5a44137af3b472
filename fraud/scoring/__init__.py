"""What scores an event: the feature catalogue, the rules, the tree model."""
