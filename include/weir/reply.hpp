#pragma once

#include <weir/http/response.hpp>
#include <weir/upgrade.hpp>

#include <asio/awaitable.hpp>

#include <functional>
#include <type_traits>
#include <utility>
#include <variant>

namespace weir {

/// An upgrade to protocol P that has not started: a response head (status and headers) that every stage
/// reads and edits like a response, plus the protocol's session. Nothing reaches the socket until the final
/// stage commits it; if a stage changed the status so that P no longer commits, the client gets a plain
/// response with that head and the session never runs.
namespace detail {
template <class T, class... Ts>
inline constexpr bool contains_v = (std::is_same_v<T, Ts> || ...);
} // namespace detail

template <protocol P>
class pending {
public:
    explicit pending(P session, weir::status code = P::default_status)
        : status_(code), session_(std::move(session)) {}

    weir::status status() const noexcept { return status_; }
    void set_status(weir::status code) noexcept { status_ = code; }

    weir::headers& headers() noexcept { return headers_; }
    const weir::headers& headers() const noexcept { return headers_; }

    /// The protocol session that runs if the upgrade is committed.
    P& session() noexcept { return session_; }
    const P& session() const noexcept { return session_; }

    /// True while the head still says "go": the final stage will start the session.
    bool will_commit() const noexcept { return P::commits(status_); }

    /// The plain response that replaces this upgrade when a stage overrode its status.
    response to_response() && { return response(status_, std::move(headers_)); }

    /// Asks to be told how the session went when it ends (an access log's duration and bytes). Runs on the
    /// connection's thread; only if the upgrade is committed. Several callbacks run in the order added.
    void on_end(std::function<void(const upgrade_summary&)> callback) {
        if (!on_end_) {
            on_end_ = std::move(callback);
            return;
        }
        on_end_ = [first = std::move(on_end_), then = std::move(callback)](const upgrade_summary& s) {
            first(s);
            then(s);
        };
    }

    /// Called by the final stage when the session has ended.
    void ended(const upgrade_summary& summary) {
        if (on_end_) on_end_(summary);
    }

private:
    weir::status status_;
    weir::headers headers_;
    P session_;
    std::function<void(const upgrade_summary&)> on_end_;
};

/// What a stage or handler returns: a plain response or one of the pending upgrades `Protocols...`.
/// `status()` and `headers()` work whatever the alternative, so a stage edits a 101 or an SSE head exactly
/// as it edits a response. A reply converts from any of its alternatives and from a reply with fewer.
template <protocol... Protocols>
class reply {
public:
    using variant_type = std::variant<response, pending<Protocols>...>;

    /// An empty 200 response.
    reply() : value_(response()) {}
    reply(response r) : value_(std::move(r)) {}              // NOLINT(google-explicit-constructor)
    reply(weir::status code) : value_(response(code)) {}     // NOLINT(google-explicit-constructor)
    template <class P>
        requires detail::contains_v<P, Protocols...>
    reply(pending<P> p) : value_(std::move(p)) {}            // NOLINT(google-explicit-constructor)
    template <class... Fewer>
        requires(!std::is_same_v<reply<Fewer...>, reply> &&
                 (detail::contains_v<Fewer, Protocols...> && ...))
    reply(reply<Fewer...> other) // NOLINT(google-explicit-constructor)
        : value_(std::visit([](auto&& alt) -> variant_type { return std::move(alt); },
                            std::move(other).variant())) {}

    weir::status status() const noexcept {
        return std::visit([](auto& alt) { return alt.status(); }, value_);
    }
    void set_status(weir::status code) noexcept {
        std::visit([code](auto& alt) { alt.set_status(code); }, value_);
    }
    weir::headers& headers() noexcept {
        return std::visit([](auto& alt) -> weir::headers& { return alt.headers(); }, value_);
    }
    const weir::headers& headers() const noexcept {
        return std::visit([](auto& alt) -> const weir::headers& { return alt.headers(); }, value_);
    }

    /// True if the reply currently holds alternative T (`response` or `pending<P>`).
    template <class T>
    bool is() const noexcept {
        return std::holds_alternative<T>(value_);
    }
    /// The alternative T, or nullptr. `if (auto* r = reply.template get_if<weir::response>())` is how a
    /// stage that needs a whole body (compression, ETag) sees only plain responses.
    template <class T>
    T* get_if() noexcept {
        return std::get_if<T>(&value_);
    }
    template <class T>
    const T* get_if() const noexcept {
        return std::get_if<T>(&value_);
    }

    /// True if the reply is a pending upgrade that will be committed as it stands.
    bool is_upgrade() const noexcept {
        return std::visit(
            [](auto& alt) {
                if constexpr (std::is_same_v<std::decay_t<decltype(alt)>, response>) return false;
                else return alt.will_commit();
            },
            value_);
    }

    /// Calls f with the current alternative.
    template <class F>
    decltype(auto) visit(F&& f) {
        return std::visit(std::forward<F>(f), value_);
    }
    template <class F>
    decltype(auto) visit(F&& f) const {
        return std::visit(std::forward<F>(f), value_);
    }

    variant_type& variant() & noexcept { return value_; }
    variant_type&& variant() && noexcept { return std::move(value_); }

private:
    variant_type value_;
};

namespace detail {

// Appends the protocols of B that A lacks, keeping A's order.
template <class A, class B>
struct merge_replies;
template <class... A>
struct merge_replies<reply<A...>, reply<>> {
    using type = reply<A...>;
};
template <class... A, class B0, class... B>
struct merge_replies<reply<A...>, reply<B0, B...>> {
    using type = typename merge_replies<std::conditional_t<contains_v<B0, A...>, reply<A...>, reply<A..., B0>>,
                                        reply<B...>>::type;
};

template <class T>
struct unwrap_awaitable {
    using type = T;
    static constexpr bool is_async = false;
};
template <class T, class E>
struct unwrap_awaitable<asio::awaitable<T, E>> {
    using type = T;
    static constexpr bool is_async = true;
};

template <class T>
struct reply_for {
    static constexpr bool valid = false;
};
template <>
struct reply_for<response> {
    static constexpr bool valid = true;
    using type = reply<>;
};
template <>
struct reply_for<weir::status> {
    static constexpr bool valid = true;
    using type = reply<>;
};
template <class P>
struct reply_for<pending<P>> {
    static constexpr bool valid = true;
    using type = reply<P>;
};
template <class... P>
struct reply_for<reply<P...>> {
    static constexpr bool valid = true;
    using type = reply<P...>;
};

} // namespace detail

/// True if T is something a stage or handler may return: response, status, pending<P>, reply<...>, or an
/// asio::awaitable of one of those.
template <class T>
concept reply_like = detail::reply_for<typename detail::unwrap_awaitable<std::decay_t<T>>::type>::valid;

/// The reply type for what a stage or handler returns (the awaitable unwrapped).
template <reply_like T>
using reply_for_t = typename detail::reply_for<typename detail::unwrap_awaitable<std::decay_t<T>>::type>::type;

/// The reply whose alternatives are those of both.
template <class A, class B>
using merged_reply_t = typename detail::merge_replies<A, B>::type;

/// True if T is an asio::awaitable.
template <class T>
inline constexpr bool is_awaitable_v = detail::unwrap_awaitable<std::decay_t<T>>::is_async;

} // namespace weir
