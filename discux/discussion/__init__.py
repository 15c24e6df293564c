"""The discussion engine: who answers, in what order, with what context, within what budget."""
