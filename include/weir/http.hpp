#pragma once

/// HTTP messages: status codes, header fields, requests, responses and the request parser.

#include <weir/http/headers.hpp>
#include <weir/http/parser.hpp>
#include <weir/http/request.hpp>
#include <weir/http/response.hpp>
#include <weir/http/status.hpp>
