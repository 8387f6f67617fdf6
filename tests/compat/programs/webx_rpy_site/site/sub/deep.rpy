from twisted.web.static import Data

resource = Data(b"deep script", "text/plain")
