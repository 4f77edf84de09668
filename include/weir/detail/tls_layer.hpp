#pragma once

#include <weir/transport.hpp>

#include <asio/error.hpp>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <sys/socket.h>
#include <sys/types.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace weir::detail {

// OpenSSL's queued errors as one line (and the queue emptied).
inline std::string openssl_errors() {
    std::string out;
    char text[256];
    while (unsigned long e = ERR_get_error()) {
        ERR_error_string_n(e, text, sizeof(text));
        if (!out.empty()) out += "; ";
        out += text;
    }
    return out.empty() ? std::string("unknown error") : out;
}

struct openssl_bio_free {
    void operator()(BIO* b) const noexcept { BIO_free(b); }
};
using openssl_bio = std::unique_ptr<BIO, openssl_bio_free>;

// Errors of a TLS session (handshake or record), as asio::error_codes; the value is OpenSSL's reason code.
class tls_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "weir.tls"; }
    std::string message(int value) const override {
        const char* reason = ERR_reason_error_string(static_cast<unsigned long>(value));
        return reason ? reason : "TLS error";
    }
};
inline const std::error_category& tls_category() noexcept {
    static const tls_category_impl category;
    return category;
}

// The SSL contexts made from one set of tls_options: one per certificate, the first the default. A set is
// shared by the connections accepted while it was current; a reload makes a new one.
struct tls_certificates {
    struct context_free {
        void operator()(SSL_CTX* c) const noexcept { SSL_CTX_free(c); }
    };
    struct entry {
        std::unique_ptr<SSL_CTX, context_free> context;
    };
    std::vector<entry> entries;
    std::vector<unsigned char> alpn; // the protocols in ALPN's wire format

    SSL_CTX* default_context() const noexcept { return entries.front().context.get(); }

    // SNI: switch to the first certificate valid for the name the client asked for; else keep the default.
    static int on_server_name(SSL* ssl, int*, void* arg) {
        const auto& set = *static_cast<const tls_certificates*>(arg);
        const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
        if (!name) return SSL_TLSEXT_ERR_NOACK;
        for (const auto& e : set.entries) {
            X509* leaf = SSL_CTX_get0_certificate(e.context.get());
            if (leaf && X509_check_host(leaf, name, std::strlen(name), 0, nullptr) == 1) {
                if (SSL_get_SSL_CTX(ssl) != e.context.get()) SSL_set_SSL_CTX(ssl, e.context.get());
                return SSL_TLSEXT_ERR_OK;
            }
        }
        return SSL_TLSEXT_ERR_OK;
    }

    static int on_alpn(SSL*, const unsigned char** out, unsigned char* out_size, const unsigned char* offered,
                       unsigned int offered_size, void* arg) {
        const auto& set = *static_cast<const tls_certificates*>(arg);
        unsigned char* chosen = nullptr;
        if (SSL_select_next_proto(&chosen, out_size, set.alpn.data(), static_cast<unsigned>(set.alpn.size()),
                                  offered, offered_size) != OPENSSL_NPN_NEGOTIATED)
            return SSL_TLSEXT_ERR_ALERT_FATAL; // no_application_protocol (RFC 7301)
        *out = chosen;
        return SSL_TLSEXT_ERR_OK;
    }
};

// One connection's TLS session, driven through a BIO over the socket's descriptor: reads go straight from the
// socket into OpenSSL's record buffer (released between records), writes go straight to the socket; encrypted
// bytes the socket cannot take yet wait in `backlog_`, the only buffer the connection holds, and only then.
class tls_layer final : public secure_layer {
public:
    tls_layer(std::shared_ptr<const tls_certificates> certificates, int descriptor)
        : certificates_(std::move(certificates)), descriptor_(descriptor) {
        ssl_ = SSL_new(certificates_->default_context());
        BIO* bio = ssl_ ? BIO_new(bio_method()) : nullptr;
        if (!bio) {
            SSL_free(ssl_);
            ERR_clear_error();
            throw std::bad_alloc();
        }
        BIO_set_data(bio, this);
        BIO_set_init(bio, 1);
        SSL_set_bio(ssl_, bio, bio);
        SSL_set_accept_state(ssl_);
    }
    tls_layer(const tls_layer&) = delete;
    tls_layer& operator=(const tls_layer&) = delete;
    ~tls_layer() override { SSL_free(ssl_); }

    bool handshake(asio::error_code& ec) override {
        ec = {};
        if (!send_backlog(ec)) {
            if (!ec) ec = asio::error::would_block;
            return false;
        }
        if (!checked_first_byte_ && !check_first_byte(ec)) return false;
        ERR_clear_error();
        int r = SSL_do_handshake(ssl_);
        if (r == 1) {
            send_backlog(ec); // session tickets: the socket takes them now, or the next write sends them
            ec = {};
            return true;
        }
        ec = error_of(r);
        if (ec == asio::error::would_block) send_backlog(ec), ec = asio::error::would_block;
        return false;
    }

    std::size_t read(asio::mutable_buffer buffer, asio::error_code& ec) override {
        ec = {};
        if (buffer.size() == 0) return 0;
        ERR_clear_error();
        std::size_t n = 0;
        int r = SSL_read_ex(ssl_, buffer.data(), buffer.size(), &n);
        if (r == 1) {
            needs_socket_ = false;
            return n;
        }
        ec = error_of(r);
        needs_socket_ = ec == asio::error::would_block;
        return 0;
    }

    std::size_t write(const asio::const_buffer* buffers, std::size_t count, asio::error_code& ec) override {
        ec = {};
        if (!send_backlog(ec)) {
            if (!ec) ec = asio::error::would_block;
            return 0;
        }
        // The byte held back last time is on the wire now: report it, and skip it in the caller's buffers
        // (they start with it, as the caller retries what was not reported).
        std::size_t reported = std::exchange(held_, 0);
        std::size_t skip = reported;
        std::size_t index = 0, offset = 0;
        auto advance = [&](std::size_t n) {
            offset += n;
            while (index < count && offset >= buffers[index].size()) {
                offset -= buffers[index].size();
                ++index;
            }
        };
        advance(skip);
        std::size_t encrypted = 0;
        while (index < count && encrypted < max_write && backlog_.empty()) {
            const char* data = static_cast<const char*>(buffers[index].data()) + offset;
            std::size_t size = std::min(buffers[index].size() - offset, max_write - encrypted);
            if (size < gather_below && index + 1 < count) {
                // Small pieces (a frame header, a short event): gather them into one record.
                auto& scratch = gather_buffer();
                size = 0;
                while (index < count && size < scratch.size() && encrypted + size < max_write) {
                    std::size_t piece = buffers[index].size() - offset;
                    if (piece >= gather_below && size > 0) break;
                    std::size_t take = std::min({piece, scratch.size() - size, max_write - encrypted - size});
                    std::memcpy(scratch.data() + size, static_cast<const char*>(buffers[index].data()) + offset, take);
                    size += take;
                    advance(take);
                }
                data = scratch.data();
            } else {
                advance(size);
            }
            ERR_clear_error();
            std::size_t n = 0;
            if (SSL_write_ex(ssl_, data, size, &n) != 1) {
                // The socket failed (reset, closed): what was encrypted before is reported, the error next time.
                ec = error_of(0);
                if (ec == asio::error::would_block) ec = asio::error::broken_pipe; // the BIO never blocks
                if (reported + encrypted > 0) {
                    ec = {};
                    break;
                }
                return 0;
            }
            encrypted += size;
        }
        if (!backlog_.empty() && encrypted > 0) {
            // Encrypted but not all on the wire: one byte stays unreported, so the caller waits for writability
            // (which sends the backlog) and calls again.
            held_ = 1;
            --encrypted;
        }
        reported += encrypted;
        if (reported == 0) ec = asio::error::would_block;
        return reported;
    }

    // Bytes read ahead are only worth a read if the last one did not stop for want of more: then what is
    // buffered is part of a record, and only the socket can complete it.
    bool has_buffered_input() const noexcept override { return !needs_socket_ && SSL_has_pending(ssl_) == 1; }
    bool has_backlog() const noexcept override { return !backlog_.empty(); }

    bool send_backlog(asio::error_code& ec) override {
        while (sent_ < backlog_.size()) {
            ssize_t n = ::send(descriptor_, backlog_.data() + sent_, backlog_.size() - sent_, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK) ec = asio::error_code(errno, asio::system_category());
                return false;
            }
            sent_ += static_cast<std::size_t>(n);
        }
        std::string().swap(backlog_); // an idle connection keeps no buffer
        sent_ = 0;
        return true;
    }

    void shutdown() noexcept override {
        // Never after a fatal error (OpenSSL forbids it), nor before the handshake is done.
        if (shut_down_ || failed_ || !SSL_is_init_finished(ssl_)) return;
        shut_down_ = true;
        ERR_clear_error();
        SSL_shutdown(ssl_);
        ERR_clear_error();
    }

    std::string_view application_protocol() const noexcept override {
        const unsigned char* name = nullptr;
        unsigned int size = 0;
        SSL_get0_alpn_selected(ssl_, &name, &size);
        return name ? std::string_view(reinterpret_cast<const char*>(name), size) : std::string_view();
    }

    bool answered_plain_http() const noexcept override { return answered_plain_http_; }

private:
    // Encrypting more than this per call would only grow the backlog of a slow reader.
    static constexpr std::size_t max_write = 64 * 1024;
    // Buffers smaller than this are copied together into one record.
    static constexpr std::size_t gather_below = 2048;

    static std::array<char, 16 * 1024>& gather_buffer() {
        thread_local std::array<char, 16 * 1024> buffer;
        return buffer;
    }

    // A TLS connection starts with a handshake record (0x16). A letter is a plain HTTP request sent to the TLS
    // port: answer it in plain text, as nginx does, so the mistake is obvious. Anything else is closed.
    bool check_first_byte(asio::error_code& ec) {
        unsigned char first = 0;
        ssize_t n = ::recv(descriptor_, &first, 1, MSG_PEEK);
        if (n < 0) {
            ec = errno == EAGAIN || errno == EWOULDBLOCK ? asio::error::would_block
                                                          : asio::error_code(errno, asio::system_category());
            return false;
        }
        if (n == 0) {
            ec = asio::error::eof;
            return false;
        }
        checked_first_byte_ = true;
        if (first == 0x16) return true;
        if (first >= 'A' && first <= 'Z') {
            static constexpr std::string_view body =
                "Bad Request: this port speaks HTTPS, and a plain HTTP request was sent to it\n";
            std::string answer = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                 "Content-Length: " +
                                 std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + std::string(body);
            [[maybe_unused]] ssize_t sent = ::send(descriptor_, answer.data(), answer.size(), MSG_NOSIGNAL);
            answered_plain_http_ = true;
        }
        ec = asio::error::no_protocol_option;
        return false;
    }

    // What an SSL call's failure means for the caller.
    asio::error_code error_of(int result) {
        int e = SSL_get_error(ssl_, result);
        switch (e) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
            return asio::error::would_block;
        case SSL_ERROR_ZERO_RETURN:
            return asio::error::eof;
        case SSL_ERROR_SYSCALL:
            failed_ = true;
            ERR_clear_error();
            if (last_errno_ != 0) return asio::error_code(std::exchange(last_errno_, 0), asio::system_category());
            return asio::error::eof;
        default: {
            failed_ = true;
            unsigned long code = ERR_peek_last_error();
            ERR_clear_error();
            return asio::error_code(static_cast<int>(ERR_GET_REASON(code)), tls_category());
        }
        }
    }

    // The BIO under the SSL session: the socket's descriptor, non-blocking.
    static BIO_METHOD* bio_method() {
        static BIO_METHOD* method = [] {
            BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "weir socket");
            BIO_meth_set_write_ex(m, &bio_write);
            BIO_meth_set_read_ex(m, &bio_read);
            BIO_meth_set_ctrl(m, &bio_ctrl);
            return m;
        }();
        return method;
    }

    static int bio_write(BIO* bio, const char* data, std::size_t size, std::size_t* written) {
        auto& self = *static_cast<tls_layer*>(BIO_get_data(bio));
        BIO_clear_retry_flags(bio);
        std::size_t sent = 0;
        if (self.backlog_.empty()) {
            for (;;) {
                ssize_t n = ::send(self.descriptor_, data, size, MSG_NOSIGNAL);
                if (n >= 0) {
                    sent = static_cast<std::size_t>(n);
                    break;
                }
                if (errno == EINTR) continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                self.last_errno_ = errno;
                return 0;
            }
        }
        // The socket is full: the rest waits for writability. Never a retry: a record is never half-taken.
        self.backlog_.append(data + sent, size - sent);
        *written = size;
        return 1;
    }

    static int bio_read(BIO* bio, char* data, std::size_t size, std::size_t* read) {
        auto& self = *static_cast<tls_layer*>(BIO_get_data(bio));
        BIO_clear_retry_flags(bio);
        for (;;) {
            ssize_t n = ::recv(self.descriptor_, data, size, 0);
            if (n > 0) {
                *read = static_cast<std::size_t>(n);
                return 1;
            }
            if (n == 0) return 0; // end of stream
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                BIO_set_retry_read(bio);
                return 0;
            }
            self.last_errno_ = errno;
            return 0;
        }
    }

    static long bio_ctrl(BIO*, int command, long, void*) { return command == BIO_CTRL_FLUSH ? 1 : 0; }

    std::shared_ptr<const tls_certificates> certificates_; // keeps the SNI and ALPN callbacks' data alive
    SSL* ssl_ = nullptr;
    int descriptor_;
    std::string backlog_;   // encrypted bytes the socket has not taken yet
    std::size_t sent_ = 0;  // of backlog_
    std::size_t held_ = 0;  // bytes encrypted but not yet reported to the writer
    int last_errno_ = 0;
    bool checked_first_byte_ = false;
    bool needs_socket_ = false; // the last read wanted more bytes from the socket
    bool answered_plain_http_ = false;
    bool shut_down_ = false;
    bool failed_ = false; // a fatal error: no close_notify
};

} // namespace weir::detail
