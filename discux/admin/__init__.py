"""Instance administration at /admin, for the people DISCUX_ADMIN_EMAILS names."""
