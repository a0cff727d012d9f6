"""The web client: static ES modules and CSS, served by the app."""
