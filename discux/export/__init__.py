"""A room's history as a Markdown or JSON download, streamed in keyset batches."""
