include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
# Installed as sparsetrain::sparsetrain (the shared library), and the static
# sparsetrain::runtime, sparsetrain::kernels, sparsetrain::graphs (the same
# names as the in-tree aliases).
set_target_properties(sparsetrain_runtime PROPERTIES EXPORT_NAME runtime)
set_target_properties(sparsetrain_kernels PROPERTIES EXPORT_NAME kernels)
set_target_properties(sparsetrain_core PROPERTIES EXPORT_NAME core)
set_target_properties(sparsetrain_graphs PROPERTIES EXPORT_NAME graphs)
install(TARGETS sparsetrain DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS sparsetrain_core sparsetrain_runtime sparsetrain_kernels sparsetrain_graphs sparsetrain_shared
  EXPORT sparsetrainTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY kernels/include/sparsetrain runtime/include/sparsetrain graphs/include/sparsetrain
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES runtime/include/sparsetrain.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT sparsetrainTargets NAMESPACE sparsetrain:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/sparsetrain)
configure_package_config_file(cmake/sparsetrainConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/sparsetrainConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/sparsetrain)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/sparsetrainConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/sparsetrainConfig.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/sparsetrainConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/sparsetrain)
# The zoo's model files (README "Models in files"), for `--model
# <prefix>/share/sparsetrain/models/resnet20.yaml` and as starting points.
install(DIRECTORY graphs/ DESTINATION ${CMAKE_INSTALL_DATADIR}/sparsetrain/models
  FILES_MATCHING PATTERN "*.yaml" PATTERN "include" EXCLUDE)
# pkg-config for C apps (examples/c): cc app.c $(pkg-config --cflags --libs sparsetrain).
configure_file(cmake/sparsetrain.pc.in ${CMAKE_CURRENT_BINARY_DIR}/sparsetrain.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/sparsetrain.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
