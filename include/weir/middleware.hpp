#pragma once

/// weir's standard stages. Compression needs zlib: include <weir/middleware/compression.hpp> separately.

#include <weir/constant_time.hpp>
#include <weir/middleware/access_log.hpp>
#include <weir/middleware/auth.hpp>
#include <weir/middleware/body_limit.hpp>
#include <weir/middleware/cors.hpp>
#include <weir/middleware/rate_limit.hpp>
#include <weir/middleware/request_id.hpp>
#include <weir/middleware/security_headers.hpp>
#include <weir/middleware/time_limit.hpp>
