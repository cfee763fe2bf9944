// Seed for scripts/fuzz.sh: C++ inline functions and templates (COMDAT groups), a static
// constructor (.init_array), a thread-local variable (rejected) and exception tables.
#include <stdexcept>

template <typename T> T twice(T value) { return value + value; }
inline int shared_counter() { static int counter; return ++counter; }

struct Registration {
    Registration() { shared_counter(); }
};
static Registration registration;

extern "C" int seed_entry(int value)
{
    if (value < 0) throw std::runtime_error("negative");
    return twice(value) + twice<long>(value) + shared_counter();
}
