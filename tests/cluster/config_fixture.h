/* Shared fixture of the config tests (test_config.c, test_config_keys.c): a
 * fresh mkdtemp directory under /tmp for the files a test writes, its removal,
 * and a file writer that sets the mode (the key loader checks permissions). The
 * key-file tests are declared here so test_config.c's main() runs every test in
 * one cmocka group.
 */
#ifndef BFTKV_TESTS_CONFIG_FIXTURE_H
#define BFTKV_TESTS_CONFIG_FIXTURE_H

#include <sys/types.h>

/* The directory dir_make() created; removed with dir_remove_tree(g_dir). */
extern char g_dir[64];

void dir_make(void);
void dir_remove_tree(const char *path);
void file_write(const char *path, const char *text, mode_t mode);

/* Key files and identities (test_config_keys.c). */
void test_key_files(void **state);
void test_identity(void **state);

#endif
