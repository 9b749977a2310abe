// The ceiling `scripts/load.sh` compares the `/verify` gate with: a Hummingbird server whose only
// route, `GET /verify`, answers 204 without reading anything (issue 15: the gate should reach
// ≥ 0.9× of its requests/s under the same load). Same Hummingbird, same HTTP/1 server and event
// loops as `pat serve`, so the ratio is what the gate adds on top of HTTP itself.
//
// usage: bare-route HOST:PORT   (a load baseline only: no limits, no TLS; listen on loopback)
import Hummingbird
import Logging
#if canImport(Glibc)
import Glibc
#endif

let arguments = CommandLine.arguments.dropFirst()
guard arguments.count == 1, let address = arguments.first, let colon = address.lastIndex(of: ":"),
      let port = Int(address[address.index(after: colon)...]) else {
    print("usage: bare-route HOST:PORT")
    exit(2)
}
var logger = Logger(label: "bare-route")
logger.logLevel = .error
let router = Router()
router.get("/verify") { _, _ in HTTPResponse.Status.noContent }
let app = Application(router: router,
                      configuration: .init(address: .hostname(String(address[..<colon]), port: port), serverName: "PATKit"),
                      logger: logger)
try await app.runService()
