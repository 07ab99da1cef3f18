// The `rows` bench's uWebSockets peer: a WebSocket echo server on 127.0.0.1:PORT, as issue #13
// measured uWebSockets. One thread (one event loop, uWebSockets' default deployment), no
// compression, text and binary messages sent back as they came; pings, pongs and the closing
// handshake are answered by uWebSockets itself. Built by `build.sh` beside this file.
//
// usage: uws-echo PORT

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "App.h"

namespace {
struct NoUserData {};
}  // namespace

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    const int port = std::atoi(argv[1]);
    uWS::App()
        .ws<NoUserData>("/*",
                        {
                            .compression = uWS::DISABLED,
                            // As large as the other servers' message limit, so no row is refused.
                            .maxPayloadLength = 64 * 1024 * 1024,
                            // The idle row keeps silent connections open; never time them out.
                            .idleTimeout = 0,
                            .maxBackpressure = 64 * 1024 * 1024,
                            .message =
                                [](auto *ws, std::string_view message, uWS::OpCode op) {
                                    ws->send(message, op);
                                },
                        })
        .listen("127.0.0.1", port,
                [port](auto *listening) {
                    if (!listening) {
                        std::fprintf(stderr, "uws-echo: cannot listen on 127.0.0.1:%d\n", port);
                        std::exit(1);
                    }
                })
        .run();
    return 0;
}
