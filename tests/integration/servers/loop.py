"""One background asyncio loop thread shared by the asyncio-based servers."""
import asyncio
import threading

_loop = None
_lock = threading.Lock()


def get_loop():
    global _loop
    with _lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            t = threading.Thread(target=_loop.run_forever, name="test-servers-loop",
                                 daemon=True)
            t.start()
        return _loop


def run(coro, timeout=10):
    """Run coro on the shared loop from a test thread and return its result."""
    return asyncio.run_coroutine_threadsafe(coro, get_loop()).result(timeout)
