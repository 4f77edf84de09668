// libFuzzer target: an event encoded by weir and parsed back by a parser that follows the WHATWG
// "interpret an event stream" steps gives the same event; fields that could inject are refused, never encoded.

#include <weir/sse/event.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct parsed {
    std::string id, event, data;
    bool has_id = false;
    int dispatched = 0;
};

parsed parse(std::string_view stream) {
    parsed out;
    std::string data, event, last_id;
    bool id_seen = false;
    std::size_t i = 0;
    while (i < stream.size()) {
        std::size_t end = stream.find_first_of("\r\n", i);
        if (end == std::string_view::npos) break; // an unterminated line is not processed
        auto line = stream.substr(i, end - i);
        i = end + 1;
        if (stream[end] == '\r' && i < stream.size() && stream[i] == '\n') ++i;
        if (line.empty()) {
            if (!data.empty()) {
                data.pop_back();
                out.data = data;
                out.event = event;
                out.dispatched++;
            }
            data.clear();
            event.clear();
            continue;
        }
        if (line.front() == ':') continue;
        auto colon = line.find(':');
        auto name = line.substr(0, colon);
        std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
        if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        if (name == "data") {
            data += value;
            data += '\n';
        } else if (name == "event") event = std::string(value);
        else if (name == "id" && value.find('\0') == std::string_view::npos) {
            last_id = std::string(value);
            id_seen = true;
        }
    }
    out.id = last_id;
    out.has_id = id_seen;
    return out;
}

std::string normalise_newlines(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\r') {
            out += '\n';
            if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
        } else out += s[i];
    }
    return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
    // Input layout: three fields separated by 0xFF bytes: id, event, data.
    std::string_view in(reinterpret_cast<const char*>(bytes), size);
    std::vector<std::string> parts(3);
    std::size_t k = 0;
    for (char c : in) {
        if (static_cast<unsigned char>(c) == 0xFF && k < 2) ++k;
        else parts[k] += c;
    }
    weir::sse_event e;
    e.id = parts[0];
    e.event = parts[1];
    e.data = parts[2];
    std::string wire;
    try {
        wire = weir::encode(e);
    } catch (const std::invalid_argument&) {
        bool unsafe = parts[0].find_first_of(std::string("\r\n\0", 3)) != std::string::npos ||
                      parts[1].find_first_of("\r\n") != std::string::npos;
        if (!unsafe) std::abort(); // refused a safe event
        return 0;
    }
    auto p = parse(wire);
    if (p.dispatched != 1) std::abort();            // exactly one event, whatever the data held
    if (!p.has_id || p.id != parts[0]) std::abort(); // the id survives, nothing injected one
    if (p.event != parts[1]) std::abort();
    if (p.data != normalise_newlines(parts[2])) std::abort();
    return 0;
}
