"""The greeter as a twistd plugin, built with ServiceMaker (the code lives in greeterapp)."""

from twisted.application.service import ServiceMaker

greeter = ServiceMaker(
    "compat greeter",
    "greeterapp.tap",
    "Says hello in several languages.",
    "compat-greeter",
)
