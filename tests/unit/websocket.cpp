#include <weir/websocket.hpp>

#include <doctest/doctest.h>

#include <string>

namespace {
std::string hex(const std::array<std::uint8_t, 20>& d) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (auto b : d) {
        out += digits[b >> 4];
        out += digits[b & 15];
    }
    return out;
}

weir::http_request handshake_request() {
    weir::http_request m;
    m.method_ = "GET";
    m.target_ = m.path_ = "/ws";
    m.version_ = 11;
    m.fields_ = {{"Host", "example.com"},
                 {"Upgrade", "websocket"},
                 {"Connection", "Upgrade"},
                 {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                 {"Sec-WebSocket-Version", "13"}};
    return m;
}
} // namespace

TEST_CASE("SHA-1 matches the RFC 3174 test vectors") {
    CHECK(hex(weir::detail::sha1("abc")) == "a9993e364706816aba3e25717850c26c9cd0d89d");
    CHECK(hex(weir::detail::sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")) ==
          "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    CHECK(hex(weir::detail::sha1("")) == "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    CHECK(hex(weir::detail::sha1(std::string(1000, 'a'))) == "291e9a6c66994949b57ba5e650361e98fc36b1ba");
}

TEST_CASE("base64 follows RFC 4648 and refuses malformed input") {
    auto enc = [](std::string_view s) {
        return weir::detail::base64_encode(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
    };
    CHECK(enc("") == "");
    CHECK(enc("f") == "Zg==");
    CHECK(enc("fo") == "Zm8=");
    CHECK(enc("foobar") == "Zm9vYmFy");
    CHECK(weir::detail::base64_decode("Zm9vYg==") == "foob");
    CHECK(!weir::detail::base64_decode("Zm9vY"));
    CHECK(!weir::detail::base64_decode("Zm=vYg=="));
    CHECK(!weir::detail::base64_decode("Zm9v!g=="));
}

TEST_CASE("the accept key is the one in RFC 6455 section 1.3") {
    CHECK(weir::websocket_accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST_CASE("UTF-8 validation accepts the boundaries and refuses overlongs, surrogates and out-of-range") {
    using weir::detail::is_valid_utf8;
    CHECK(is_valid_utf8("plain ascii"));
    CHECK(is_valid_utf8("\xc2\x80"));
    CHECK(is_valid_utf8("\xef\xbf\xbf"));
    CHECK(is_valid_utf8("\xf4\x8f\xbf\xbf"));
    CHECK(!is_valid_utf8("\xc0\xaf"));
    CHECK(!is_valid_utf8("\xed\xa0\x80"));
    CHECK(!is_valid_utf8("\xf4\x90\x80\x80"));
    CHECK(!is_valid_utf8("\xe2\x82"));
    weir::detail::utf8_validator v;
    CHECK(v.feed("\xe2"));
    CHECK(!v.complete());
    CHECK(v.feed("\x82\xac"));
    CHECK(v.complete());
    weir::detail::utf8_validator w;
    CHECK(!w.feed("ok\xff"));
}

TEST_CASE("a valid handshake becomes a pending 101 that commits, with the accept key in its fields") {
    auto m = handshake_request();
    auto r = weir::accept_websocket(weir::request<>(m), [](weir::websocket_connection&) -> asio::awaitable<void> {
        co_return;
    });
    REQUIRE(r.is<weir::pending<weir::websocket>>());
    CHECK(r.is_upgrade());
    CHECK(r.status() == weir::status::switching_protocols);
    std::string fields;
    r.get_if<weir::pending<weir::websocket>>()->session().write_protocol_fields(fields);
    CHECK(fields.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != std::string::npos);
    CHECK(fields.find("Sec-WebSocket-Protocol") == std::string::npos);
}

TEST_CASE("handshake refusals: 426 for another version, 400 for a bad key, 403 for a foreign origin") {
    auto handler = [](weir::websocket_connection&) -> asio::awaitable<void> { co_return; };
    auto m = handshake_request();
    m.fields_[4].value = "8";
    auto r = weir::accept_websocket(weir::request<>(m), handler);
    CHECK(r.status() == weir::status::upgrade_required);
    CHECK(r.headers().get("Sec-WebSocket-Version") == "13");

    m = handshake_request();
    m.fields_[3].value = "not-base64";
    CHECK(weir::accept_websocket(weir::request<>(m), handler).status() == weir::status::bad_request);

    m = handshake_request();
    m.fields_.push_back({"Origin", "http://evil.example"});
    weir::websocket_options options;
    options.allowed_origins = {"http://good.example"};
    CHECK(weir::accept_websocket(weir::request<>(m), handler, options).status() == weir::status::forbidden);
    m.fields_.back().value = "http://example.com";
    CHECK(weir::accept_websocket(weir::request<>(m), handler, options).is_upgrade());
}

TEST_CASE("a pending WebSocket upgrade commits only while its status is 101") {
    CHECK(weir::websocket::commits(weir::status::switching_protocols));
    CHECK(!weir::websocket::commits(weir::status::ok));
    CHECK(!weir::websocket::commits(weir::status::forbidden));
}

TEST_CASE("by default a handshake from a foreign Origin gets 403; its own origin, a listed one and none pass") {
    auto handler = [](weir::websocket_connection&) -> asio::awaitable<void> { co_return; };
    auto m = handshake_request(); // Host: example.com
    CHECK(weir::accept_websocket(weir::request<>(m), handler).is_upgrade()); // no Origin: not a browser
    m.fields_.push_back({"Origin", "http://evil.example"});
    CHECK(weir::accept_websocket(weir::request<>(m), handler).status() == weir::status::forbidden);
    m.fields_.back().value = "https://example.com";
    CHECK(weir::accept_websocket(weir::request<>(m), handler).is_upgrade());
    m.fields_.back().value = "http://example.com.evil.example";
    CHECK(weir::accept_websocket(weir::request<>(m), handler).status() == weir::status::forbidden);

    m.fields_.back().value = "http://good.example";
    weir::websocket_options listed;
    listed.allowed_origins = {"http://good.example"};
    CHECK(weir::accept_websocket(weir::request<>(m), handler, listed).is_upgrade());

    m.fields_.back().value = "http://evil.example";
    weir::websocket_options open;
    open.check_origin = false; // the explicit opt-out
    CHECK(weir::accept_websocket(weir::request<>(m), handler, open).is_upgrade());
}
