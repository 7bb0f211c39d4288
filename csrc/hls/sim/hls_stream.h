/*
 * edgekit's host-simulation stand-in for hls::stream<T>: an unbounded FIFO with the blocking and
 * non-blocking calls generated code and testbenches use (read, write, empty, full, size,
 * read_nb, write_nb, >> and <<).
 *
 * Written for edgekit, not taken from a vendor. A C simulation runs the dataflow processes one
 * after the other, so a FIFO never needs to block: a read from an empty stream is a design error
 * (a process consumed more than its producer wrote). It is reported on stderr and counted, the
 * read returns T(), and ek_sim_errors() lets a harness fail the run instead of aborting the
 * process that loaded it. Data left in a stream when it is destroyed is the opposite error and
 * is counted the same way.
 */
#ifndef EDGEKIT_SIM_HLS_STREAM_H
#define EDGEKIT_SIM_HLS_STREAM_H

#pragma GCC diagnostic ignored "-Wunknown-pragmas"

#include <cstddef>
#include <cstdio>
#include <deque>
#include <string>

/* Errors seen by any stream in this process since the last reset. */
inline int &ek_sim_error_count()
{
    static int count = 0;
    return count;
}

inline int ek_sim_errors() { return ek_sim_error_count(); }
inline void ek_sim_reset_errors() { ek_sim_error_count() = 0; }

namespace hls {

template <typename T, int DEPTH = 0>
class stream {
public:
    stream() : name_("stream") {}
    explicit stream(const char *name) : name_(name) {}
    stream(const stream &) = delete;
    stream &operator=(const stream &) = delete;

    ~stream()
    {
        if (!queue_.empty()) {
            ++ek_sim_error_count();
            std::fprintf(stderr, "hls sim: stream '%s' destroyed with %zu unread element(s)\n",
                         name_.c_str(), queue_.size());
        }
    }

    T read()
    {
        if (queue_.empty()) {
            ++ek_sim_error_count();
            std::fprintf(stderr, "hls sim: read from empty stream '%s'\n", name_.c_str());
            return T();
        }
        T value = queue_.front();
        queue_.pop_front();
        return value;
    }

    void read(T &value) { value = read(); }

    bool read_nb(T &value)
    {
        if (queue_.empty()) {
            return false;
        }
        value = read();
        return true;
    }

    void write(const T &value) { queue_.push_back(value); }

    bool write_nb(const T &value)
    {
        write(value);
        return true;
    }

    bool empty() const { return queue_.empty(); }
    bool full() const { return false; }
    std::size_t size() const { return queue_.size(); }

    void operator>>(T &value) { read(value); }
    void operator<<(const T &value) { write(value); }

private:
    std::string name_;
    std::deque<T> queue_;
};

} // namespace hls

#endif /* EDGEKIT_SIM_HLS_STREAM_H */
