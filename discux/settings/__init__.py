"""The signed-in user's settings: profile, plan, sessions."""
