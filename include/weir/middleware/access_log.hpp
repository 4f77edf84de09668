#pragma once

#include <weir/middleware/request_id.hpp>
#include <weir/pipeline.hpp>
#include <weir/upgrade.hpp>

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>

namespace weir {

/// Writes one line per request when its reply is ready: method, target, status, how long the stages and
/// handler took, the request id (when a request_id stage runs before this one) and, for a reply that will be
/// committed as an upgrade, what it upgrades to; for an upgrade, a second line (`event=end`) when the stream
/// or session ends, with its duration and the bytes it wrote. Lines are key=value pairs, easy to grep.
struct access_log {
    /// Where lines go; default: stderr.
    std::function<void(std::string_view)> sink{};

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
                                   req.method(), escape(req.target()), to_int(reply.status()), micros, k,
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

private:
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
