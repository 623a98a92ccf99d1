import turtle_plugin  # noqa: F401  registers the plugin's modules, as custom_imports does
