/* A deliberately bad "engine": it reads the clock and draws randomness, which
 * engine/ must never do (docs/design.md §5). engine_forbidden_symbols_test runs
 * tools/check-engine-symbols on this library and expects it to fail, proving the
 * build-time check can catch a violation. Never linked into anything. */
#include <stdlib.h>
#include <time.h>

int forbidden_fixture_roll(void);

int forbidden_fixture_roll(void)
{
    return (int)(time(NULL) & 0xff) + rand();
}
