# Unit tests: one azbuse_add_unit_test() per test file.
