// The documentation's examples do what the pages say they do.
#include "doc_snippets/pipeline.cpp"

#include <doctest/doctest.h>

TEST_CASE("the examples in docs/pipeline.md behave as documented") { CHECK(pipeline_answers_as_documented()); }
