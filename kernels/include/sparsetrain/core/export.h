// What libsparsetrain.so exports. The libraries are compiled with hidden
// visibility by default; every public header puts its declarations between
// SPARSETRAIN_PUBLIC_BEGIN and SPARSETRAIN_PUBLIC_END, so the public API (its
// functions, classes, vtables and type information, e.g. sparsetrain::Error
// for catch clauses) is exported and everything else (kernels, internal
// helpers) stays inside the library. The configure step refuses a public
// header without them.
#pragma once

#define SPARSETRAIN_PUBLIC_BEGIN _Pragma("GCC visibility push(default)")
#define SPARSETRAIN_PUBLIC_END _Pragma("GCC visibility pop")
