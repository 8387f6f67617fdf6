"""The application a plugin starts: the plugin module only describes it to twistd."""
