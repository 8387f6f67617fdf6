"""twisted.python.usage options (flags, parameters, coerce, opt_ methods, subcommands) and
the "Interfaces and adapters" howto (registerAdapter, Componentized, Adapter,
proxyForInterface), serving a small line protocol that adapts shapes on request.
"""

import sys

from twisted.internet import protocol, reactor
from twisted.protocols import basic
from twisted.python import components, usage
from zope.interface import Attribute, Interface, implementer

# -- options --------------------------------------------------------------------------------


class ServeOptions(usage.Options):
    synopsis = "[options] portnumber"
    longdesc = "Serve shapes on a line protocol."
    optFlags = [["shout", "s", "Answer in capitals."]]
    optParameters = [
        ["scale", "x", 1, "Multiply every size by this.", int],
        ["unit", None, "cm", "The unit of length."],
    ]

    def parseArgs(self, port):
        self["port"] = int(port)

    def postOptions(self):
        if self["scale"] < 1:
            raise usage.UsageError("scale must be positive")


class CheckOptions(usage.Options):
    optFlags = [["quiet", "q", "Say less."]]


class Options(usage.Options):
    optFlags = [["verbose", "v", "Say more."], ["debug", "d", None]]
    optParameters = [["name", "n", "shapes", "The server's name."]]
    subCommands = [
        ["serve", None, ServeOptions, "Serve shapes."],
        ["check", "c", CheckOptions, "Check the options."],
    ]

    def __init__(self):
        super().__init__()
        self["defines"] = {}
        self["verbosity"] = 0

    def opt_define(self, value):
        """Define a constant (name=value); may be repeated."""
        key, _, val = value.partition("=")
        self["defines"][key] = val

    opt_D = opt_define

    def opt_verbose(self):
        """Say more (repeat for even more)."""
        self["verbosity"] += 1

    opt_v = opt_verbose


def try_parse(argv):
    options = Options()
    try:
        options.parseOptions(argv)
    except usage.UsageError as e:
        print(f"usage error for {argv!r}: {e}")
        return None
    shown = {k: options[k] for k in sorted(options) if k != "debug"}
    print(f"parsed {argv!r} -> {shown!r} sub={options.subCommand!r}")
    if getattr(options, "subOptions", None) is not None:
        print(
            "  subOptions:",
            {k: options.subOptions[k] for k in sorted(options.subOptions)},
            "parent is options:",
            options.subOptions.parent is options,
        )
    return options


# -- interfaces and adapters ------------------------------------------------------------------


class IShape(Interface):
    name = Attribute("what it is")


class IArea(Interface):
    def area():
        """The area."""


class IDescribe(Interface):
    def describe():
        """A sentence."""


@implementer(IShape)
class Square:
    name = "square"

    def __init__(self, side):
        self.side = side


@implementer(IShape)
class Circle:
    name = "circle"

    def __init__(self, radius):
        self.radius = radius


class Triangle:
    name = "triangle"


@implementer(IArea)
class SquareArea(components.Adapter):
    def area(self):
        return self.original.side**2


@implementer(IArea)
class CircleArea:
    def __init__(self, circle):
        self.circle = circle

    def area(self):
        return round(3.14159 * self.circle.radius**2, 2)


components.registerAdapter(SquareArea, Square, IArea)
components.registerAdapter(CircleArea, Circle, IArea)


@implementer(IDescribe)
class Describer:
    def __init__(self, shape):
        self.shape = shape

    def describe(self):
        return f"a {self.shape.name} of area {IArea(self.shape).area()}"


components.registerAdapter(Describer, IShape, IDescribe)


class LoudArea(components.proxyForInterface(IArea)):
    def area(self):
        return f"{self.original.area()}!"


class Drawing(components.Componentized):
    pass


@implementer(IArea)
class DrawingArea(components.Adapter):
    def area(self):
        return 0


class Canvas(components.Componentized):
    pass


@implementer(IArea)
class CanvasArea(components.Adapter):
    def area(self):
        return -1


components.registerAdapter(CanvasArea, Canvas, IArea)


def adapters_demo():
    print("IArea(Square(3)).area():", IArea(Square(3)).area())
    print("IDescribe(Circle(1)):", IDescribe(Circle(1)).describe())
    print("default:", IArea(Triangle(), "no area"))
    try:
        IArea(Triangle())
    except TypeError as e:
        print("TypeError:", e.args[0], type(e.args[1]).__name__, e.args[2].__name__)
    print("adapter factory:", components.getAdapterFactory(Square, IArea, None).__name__)
    print("no factory:", components.getAdapterFactory(Triangle, IArea, None))
    try:
        components.registerAdapter(CircleArea, Circle, IArea)
    except ValueError as e:
        print("duplicate registration:", type(e).__name__)  # (the wording differs)
    loud = LoudArea(IArea(Square(2)))
    print("proxyForInterface:", loud.area(), IArea.providedBy(loud), type(loud.original).__name__)
    drawing = Drawing()
    print("componentized no component:", drawing.getComponent(IArea))
    print("componentized adapts to:", IArea(drawing, None))
    drawing.setComponent(IArea, SquareArea(Square(5)))
    print("componentized setComponent:", drawing.getComponent(IArea).area(), IArea(drawing).area())
    drawing.unsetComponent(IArea)
    print("after unset:", drawing.getComponent(IArea, "gone"))
    d2 = Drawing()
    d2.addComponent(DrawingArea(d2), ignoreClass=True)
    print("addComponent:", IArea(d2).area(), d2.getComponent(IArea).original is d2)
    canvas = Canvas()
    first = IArea(canvas)
    print(
        "registered on Componentized:",
        type(first).__name__,
        first.area(),
        "cached:",
        IArea(canvas) is first,
        canvas.getComponent(IArea) is first,
    )
    c2 = Canvas()
    c2.addComponent(CanvasArea(c2))
    print("addComponent with matching adapter:", c2.getComponent(IArea).area())


# -- the server --------------------------------------------------------------------------------


SHAPES = {"square": Square, "circle": Circle, "triangle": lambda n: Triangle()}


class ShapeProtocol(basic.LineReceiver):
    delimiter = b"\n"

    def lineReceived(self, line):
        opts = self.factory.options
        words = line.decode().split()
        try:
            kind, size = words[0], int(words[1]) * opts["scale"]
            shape = SHAPES[kind](size)
            answer = IDescribe(shape).describe() + " " + opts["unit"] + "^2"
        except TypeError as e:
            answer = f"cannot: {e.args[0]}"
        except (KeyError, IndexError, ValueError):
            answer = "what?"
        if opts["shout"]:
            answer = answer.upper()
        self.sendLine(answer.encode())


def _without_version(text):
    return "\n".join(line for line in text.rstrip().splitlines() if "--version" not in line)


def main(argv):
    print("== help")  # (--version names the framework: left out)
    print(_without_version(str(ServeOptions())))
    print("== top-level help")
    print(_without_version(str(Options())))
    print("== parsing")
    for trial in (
        ["-vv", "--name=x", "-D", "a=1", "--define", "b=2", "check", "-q"],
        ["--debug", "c"],
        [],
        ["--bogus"],
        ["-n"],
        ["serve"],
        ["serve", "1", "2"],
        ["serve", "--scale", "two", "1"],
        ["serve", "--scale=0", "1"],
        ["unknown"],
    ):
        try_parse(trial)
    print("== adapters")
    adapters_demo()
    options = Options()
    options.parseOptions(argv)  # not printed: the port number changes from run to run
    print("serving with", {k: v for k, v in options.subOptions.items() if k != "port"})
    factory = protocol.Factory.forProtocol(ShapeProtocol)
    factory.options = options.subOptions
    reactor.listenTCP(options.subOptions["port"], factory, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
