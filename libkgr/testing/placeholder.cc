// kgr_testing: hand-written fakes for unit tests (see the headers here).
namespace kgr::testing {}
