#pragma once

#include <weir/transport.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <memory>

// A connected pair of loopback sockets on `io`: the server's end as a transport (what a committed upgrade
// hands its session) and the peer's end as a plain socket.
struct socket_pair {
    explicit socket_pair(asio::io_context& io) : client(io), server(accept(io, client)) {}
    // The server's end through `secure` (a layer a test controls).
    socket_pair(asio::io_context& io, std::unique_ptr<weir::detail::secure_layer> secure)
        : client(io), server(accept(io, client), std::move(secure)) {}

    asio::ip::tcp::socket client;
    weir::transport server;

private:
    static asio::ip::tcp::socket accept(asio::io_context& io, asio::ip::tcp::socket& client) {
        asio::ip::tcp::acceptor acceptor(io, {asio::ip::address_v4::loopback(), 0});
        client.connect(acceptor.local_endpoint());
        return acceptor.accept();
    }
};
