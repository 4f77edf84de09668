#include <weir/detail/event_loop.hpp>

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <vector>

using namespace std::chrono_literals;
using weir::detail::deadline;
using weir::detail::event_loop;

namespace {

// A deadline that records when it fired.
struct probe {
    deadline d{[](void* self) {
        auto* p = static_cast<probe*>(self);
        p->fired_at = deadline::clock::now();
        p->fired++;
        if (p->log) p->log->push_back(p->name);
    },
               this};
    int name = 0;
    std::vector<int>* log = nullptr;
    int fired = 0;
    deadline::clock::time_point fired_at{};
};

} // namespace

TEST_CASE("each deadline fires once, within the sweep's granularity, earliest first across durations") {
    asio::io_context io;
    auto& sweep = event_loop::of(io).deadlines();
    std::vector<int> order;
    probe a, b, c;
    a.name = 1, b.name = 2, c.name = 3;
    a.log = b.log = c.log = &order;
    auto start = deadline::clock::now();
    a.d.arm(sweep, 300ms);
    b.d.arm(sweep, 100ms);
    c.d.arm(sweep, 200ms);
    CHECK(sweep.size() == 3);
    io.run_for(1s);
    CHECK(order == std::vector<int>{2, 3, 1});
    for (probe* p : {&a, &b, &c}) {
        CHECK(p->fired == 1);
        CHECK_FALSE(p->d.armed());
    }
    CHECK(b.fired_at - start >= 100ms);
    CHECK(b.fired_at - start < 100ms + 50ms + 100ms); // granularity plus scheduling slack
    CHECK(a.fired_at - start >= 300ms);
    CHECK(sweep.size() == 0);
}

TEST_CASE("a re-armed deadline fires at its new time and a cancelled one never") {
    asio::io_context io;
    auto& sweep = event_loop::of(io).deadlines();
    probe moved, cancelled;
    auto start = deadline::clock::now();
    moved.d.arm(sweep, 100ms);
    cancelled.d.arm(sweep, 100ms);
    asio::steady_timer t(io, 50ms);
    t.async_wait([&](const asio::error_code&) {
        moved.d.arm(sweep, 100ms); // now due at ~150 ms
        cancelled.d.cancel();
    });
    io.run_for(500ms);
    CHECK(moved.fired == 1);
    CHECK(moved.fired_at - start >= 150ms);
    CHECK(cancelled.fired == 0);
}

TEST_CASE("a shorter deadline armed after a longer one wakes the loop early") {
    asio::io_context io;
    auto& sweep = event_loop::of(io).deadlines();
    probe slow, fast;
    auto start = deadline::clock::now();
    slow.d.arm(sweep, 2s);
    fast.d.arm(sweep, 50ms);
    io.run_for(400ms);
    CHECK(fast.fired == 1);
    CHECK(fast.fired_at - start < 300ms);
    CHECK(slow.fired == 0);
    CHECK(slow.d.armed());
}

TEST_CASE("an expiry callback may destroy its deadline or arm others") {
    asio::io_context io;
    auto& sweep = event_loop::of(io).deadlines();
    struct owner {
        deadline d{[](void* self) {
                       auto* o = static_cast<owner*>(self);
                       (*o->alive)--;
                       o->self.reset(); // destroys *o, and the deadline with it
                   },
                   this};
        std::shared_ptr<owner> self;
        int* alive = nullptr;
    };
    int alive = 100;
    for (int i = 0; i < 100; ++i) {
        auto o = std::make_shared<owner>();
        o->alive = &alive;
        o->self = o;
        o->d.arm(sweep, std::chrono::milliseconds(10 + i % 7));
    }
    probe later;
    later.d.arm(sweep, 100ms);
    io.run_for(400ms);
    CHECK(alive == 0);
    CHECK(later.fired == 1);
    CHECK(sweep.size() == 0);
}

TEST_CASE("deadlines still armed when the loop is destroyed are left harmlessly") {
    auto io = std::make_unique<asio::io_context>();
    probe p;
    p.d.arm(event_loop::of(*io).deadlines(), 1h);
    io.reset();
    CHECK_FALSE(p.d.armed());
}

TEST_CASE("each event loop has one receive buffer shared by its connections") {
    asio::io_context a, b;
    auto one = event_loop::of(a).receive_buffer();
    CHECK(one.size() == event_loop::receive_buffer_size);
    CHECK(event_loop::of(a).receive_buffer().data() == one.data());
    CHECK(event_loop::of(b).receive_buffer().data() != one.data());
}

TEST_CASE("once its last deadline is cancelled the sweep holds no wake-up, so the loop's run() returns") {
    asio::io_context io;
    auto& sweep = event_loop::of(io).deadlines();
    probe a, b;
    a.d.arm(sweep, 10s);
    b.d.arm(sweep, 20s);
    asio::post(io, [&] {
        a.d.cancel();
        b.d.cancel();
    });
    auto start = deadline::clock::now();
    io.run_for(5s);
    CHECK(deadline::clock::now() - start < 1s);
    CHECK(io.stopped());
    CHECK(a.fired == 0);
    CHECK(b.fired == 0);
    // Arming again after that wakes the loop as usual.
    io.restart();
    a.d.arm(sweep, 50ms);
    io.run_for(1s);
    CHECK(a.fired == 1);
}

TEST_CASE("a loop's parts: one of each type per loop, made on first use, destroyed with the loop") {
    struct counted {
        int value = 0;
    };
    struct other {
        int value = 0;
    };
    asio::io_context io1, io2;
    auto& a = event_loop::of(io1).part<counted>();
    a.value = 7;
    CHECK(&event_loop::of(io1).part<counted>() == &a);
    CHECK(event_loop::of(io1).part<counted>().value == 7);
    CHECK(event_loop::of(io1).part<other>().value == 0); // another type, another object
    CHECK(static_cast<void*>(&event_loop::of(io1).part<other>()) != static_cast<void*>(&a));
    CHECK(&event_loop::of(io2).part<counted>() != &a); // another loop, another object
    CHECK(event_loop::of(io2).part<counted>().value == 0);
}
