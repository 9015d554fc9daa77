"""`art ui`: a read-only web app over the store (and the broker's offsets) for people who build agents."""
