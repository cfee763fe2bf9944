/* Seed for scripts/fuzz.sh: thread-local storage, which the loader rejects. */
__thread int per_thread_counter;
int bump(void) { return ++per_thread_counter; }
