// Credentials with a wildcard origin is refused by the compiler when the configuration says so in its type.
// expect: CORS forbids credentials with a wildcard origin
#include <weir/middleware/cors.hpp>

int main() {
    weir::cors<weir::cors_credentials::include> cors(weir::any_origin);
    (void)cors;
}
