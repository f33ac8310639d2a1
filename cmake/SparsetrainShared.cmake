# libsparsetrain.so: the kernels, the runtime and the model zoo in one shared
# library for apps and bindings (the C API and the Python module link it).
# The static libraries are compiled with hidden visibility and taken whole;
# the public headers mark what is exported (sparsetrain/core/export.h), so
# the kernels and every internal helper stay private to the library. SONAME
# libsparsetrain.so.<major>.<minor>: before 1.0 a minor release may change the
# ABI.
foreach(lib sparsetrain_kernels sparsetrain_runtime sparsetrain_graphs)
  set_target_properties(${lib} PROPERTIES CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
endforeach()

add_library(sparsetrain_shared SHARED ${PROJECT_SOURCE_DIR}/runtime/shared/library.cc)
add_library(sparsetrain::sparsetrain ALIAS sparsetrain_shared)
set_target_properties(sparsetrain_shared PROPERTIES
  OUTPUT_NAME sparsetrain
  EXPORT_NAME sparsetrain
  VERSION ${PROJECT_VERSION}
  SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR}
  CXX_VISIBILITY_PRESET hidden
  VISIBILITY_INLINES_HIDDEN ON)
# Every object of the three archives (CMake's WHOLE_ARCHIVE feature refuses
# archives that also come in as each other's dependencies), then the same
# targets as plain items for their own dependencies (oneDNN, OpenMP, libpng,
# libcurl, ...); the archives add nothing a second time.
set(SPARSETRAIN_ARCHIVES sparsetrain_graphs sparsetrain_runtime sparsetrain_kernels)
add_dependencies(sparsetrain_shared ${SPARSETRAIN_ARCHIVES})
target_link_options(sparsetrain_shared PRIVATE -Wl,--whole-archive
  $<TARGET_FILE:sparsetrain_graphs> $<TARGET_FILE:sparsetrain_runtime>
  $<TARGET_FILE:sparsetrain_kernels> -Wl,--no-whole-archive)
target_link_libraries(sparsetrain_shared PRIVATE ${SPARSETRAIN_ARCHIVES})
# What an app needs to compile against the public headers (the static
# targets' usage requirements, without linking them again).
target_link_libraries(sparsetrain_shared PUBLIC sparsetrain_core TBB::tbb)
target_include_directories(sparsetrain_shared PUBLIC
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/runtime/include>
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/graphs/include>
  $<INSTALL_INTERFACE:include>)
# Nothing undefined may be left for the app to supply.
target_link_options(sparsetrain_shared PRIVATE -Wl,--no-undefined)

# A public header without the export markers would leave its declarations
# hidden in the shared library: refuse it at configure time.
file(GLOB SPARSETRAIN_PUBLIC_HEADERS CONFIGURE_DEPENDS
  ${PROJECT_SOURCE_DIR}/runtime/include/sparsetrain/*.h
  ${PROJECT_SOURCE_DIR}/graphs/include/sparsetrain/*.h
  ${PROJECT_SOURCE_DIR}/kernels/include/sparsetrain/core/*.h)
foreach(header IN LISTS SPARSETRAIN_PUBLIC_HEADERS)
  file(STRINGS ${header} declares REGEX "^namespace sparsetrain")
  file(STRINGS ${header} marked REGEX "^SPARSETRAIN_PUBLIC_BEGIN")
  if(declares AND NOT marked)
    message(FATAL_ERROR "${header} declares public API without SPARSETRAIN_PUBLIC_BEGIN/END "
      "(sparsetrain/core/export.h): libsparsetrain.so would not export it")
  endif()
endforeach()

# The C API (runtime/include/sparsetrain.h) lives in the shared library only:
# its functions are exported by their ST_API markers.
file(GLOB SPARSETRAIN_CAPI_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/runtime/capi/*.cc)
target_sources(sparsetrain_shared PRIVATE ${SPARSETRAIN_CAPI_SOURCES})
target_include_directories(sparsetrain_shared PRIVATE ${PROJECT_SOURCE_DIR}/runtime)
target_link_libraries(sparsetrain_shared PRIVATE nlohmann_json::nlohmann_json)
target_compile_definitions(sparsetrain_shared PRIVATE SPARSETRAIN_VERSION="${PROJECT_VERSION}")
sparsetrain_target_defaults(sparsetrain_shared)
