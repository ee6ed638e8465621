# SPDX-License-Identifier: LGPL-2.1-or-later
# Unit tests: one azbuse_add_unit_test() per test file.
azbuse_add_unit_test(test_ring unit/ring_model.c)
azbuse_add_unit_test(test_parse)
azbuse_add_unit_test(test_args)
azbuse_add_unit_test(test_engines unit/ring_model.c)
azbuse_add_unit_test(test_meta)
azbuse_add_unit_test(test_pubmap)
azbuse_add_unit_test(test_cache_io unit/ring_model.c)
azbuse_add_unit_test(test_log)
