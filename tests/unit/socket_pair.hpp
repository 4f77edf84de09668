#pragma once

#include <weir/transport.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

// A connected pair of loopback sockets on `io`: the server's end as a transport (what a committed upgrade
// hands its session) and the peer's end as a plain socket.
struct socket_pair {
    explicit socket_pair(asio::io_context& io) : client(io), server(accept(io, client)) {}

    asio::ip::tcp::socket client;
    weir::transport server;

private:
    static asio::ip::tcp::socket accept(asio::io_context& io, asio::ip::tcp::socket& client) {
        asio::ip::tcp::acceptor acceptor(io, {asio::ip::address_v4::loopback(), 0});
        client.connect(acceptor.local_endpoint());
        return acceptor.accept();
    }
};
