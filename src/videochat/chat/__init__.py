"""Chat messages: storage, history and the rules for content."""
