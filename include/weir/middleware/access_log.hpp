#pragma once

#include <weir/detail/chars.hpp>
#include <weir/middleware/request_id.hpp>
#include <weir/pipeline.hpp>
#include <weir/upgrade.hpp>

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace weir {

/// Writes one line per request when its reply is ready: method, target, status, how long the stages and
/// handler took, the request id (when a request_id stage runs before this one) and, for a reply that will be
/// committed as an upgrade, what it upgrades to; for an upgrade, a second line (`event=end`) when the stream
/// or session ends, with its duration and the bytes it wrote. Lines are key=value pairs, easy to grep.
///
/// `target=` is the path without the query by default: queries carry tokens (`?token=` for EventSource and
/// WebSocket), and a log must not hold them, nor a client's wrong guesses. With `log_query`, the query is
/// written with the value of every parameter named in `redacted_parameters` replaced by `[redacted]`.
struct access_log {
    /// Where lines go; default: stderr.
    std::function<void(std::string_view)> sink{};
    /// Also write the query (`target="/path?a=1"`), with `redacted_parameters` redacted; default: path only.
    bool log_query = false;
    /// Query parameters whose values are never logged, compared case-insensitively after percent-decoding.
    std::vector<std::string> redacted_parameters{"token",        "access_token", "id_token", "refresh_token",
                                                 "api_key",      "apikey",       "key",      "password",
                                                 "secret",       "client_secret", "code",    "signature",
                                                 "sig",          "auth",          "session"};

    template <class Request, class Next>
    next_result_t<Next> operator()(const Request& req, Next next) const {
        auto started = std::chrono::steady_clock::now();
        return after_next(next, req, [this, &req, started](auto& reply) {
            auto micros = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                                started)
                              .count();
            std::string id;
            if constexpr (Request::template has<request_id_value>) id = req.template get<request_id_value>().value;
            std::string_view kind = "response";
            auto line = [&](std::string_view k) {
                return fmt::format("method={} target=\"{}\" status={} duration_us={} kind={} request_id={} peer={}",
                                   req.method(), escape(logged_target(req)), to_int(reply.status()), micros, k,
                                   id.empty() ? "-" : id, req.remote_endpoint().address().to_string());
            };
            reply.visit([&](auto& alt) {
                if constexpr (requires { alt.session(); }) {
                    if (!alt.will_commit()) return;
                    kind = upgrade_name(alt.session());
                    // A second line when the stream or session ends: how long it ran and what it sent.
                    alt.on_end([sink = sink, start = line(kind)](const upgrade_summary& s) {
                        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(s.duration).count();
                        write(sink, fmt::format("{} event=end stream_ms={} stream_bytes={}", start, ms, s.bytes_written));
                    });
                }
            });
            write(sink, line(kind));
        });
    }

    /// What `target=` shows for a request: the path, and the query with secrets redacted when `log_query`.
    template <class Request>
    std::string logged_target(const Request& req) const {
        std::string out(req.path());
        auto query = req.query();
        if (!log_query || query.empty()) return out;
        out += '?';
        bool first = true;
        while (true) {
            auto amp = query.find('&');
            auto pair = query.substr(0, amp);
            auto eq = pair.find('=');
            if (!first) out += '&';
            first = false;
            if (eq != std::string_view::npos && redacted(pair.substr(0, eq))) {
                out += pair.substr(0, eq + 1);
                out += "[redacted]";
            } else {
                out += pair;
            }
            if (amp == std::string_view::npos) break;
            query.remove_prefix(amp + 1);
        }
        return out;
    }

private:
    bool redacted(std::string_view raw_name) const {
        auto name = http_request::decode_component(raw_name);
        for (auto& r : redacted_parameters)
            if (detail::iequals(name, r)) return true;
        return false;
    }

    static void write(const std::function<void(std::string_view)>& sink, const std::string& text) {
        if (sink) sink(text);
        else fmt::print(stderr, "{}\n", text);
    }

    template <class P>
    static std::string_view upgrade_name(const P&) {
        if constexpr (requires { P::name; }) return P::name;
        else return "upgrade";
    }

    static std::string escape(std::string_view s) {
        std::string out;
        for (char c : s) {
            if (c == '"' || c == '\\') out += '\\';
            out += c;
        }
        return out;
    }
};

} // namespace weir
