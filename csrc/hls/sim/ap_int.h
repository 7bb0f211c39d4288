/*
 * edgekit's host-simulation subset of the arbitrary-precision integer types that generated HLS
 * code uses: ap_int<W> (signed) and ap_uint<W> (unsigned), 1 <= W <= 64.
 *
 * Written for edgekit from the documented behaviour of the HLS integer types, so that generated
 * projects C-simulate with a plain g++/clang++ and no vendor installation. It is not a vendor
 * header and covers only what edgekit emits:
 *   - assignment and conversion wrap to W bits (two's complement), the types' default mode;
 *   - +, -, * widen the result so it cannot overflow: a + b has max(Wa, Wb) + 1 bits, a * b
 *     Wa + Wb bits, a signed/unsigned mix is signed and gives the unsigned side one more bit;
 *   - &, |, ^ keep max(Wa, Wb) bits (same mixing rule); shifts keep the left operand's type;
 *   - a C integer operand counts as ap_int/ap_uint of its own width;
 *   - to_int(), to_uint(), to_int64(), to_uint64(), length() and implicit conversion to a
 *     64-bit C integer.
 * A result wider than 64 bits is a compile-time error here rather than a silent difference.
 *
 * Vitis builds this project with its own ap_int.h: this file lives in csim/include, which only
 * the host simulation adds to the include path.
 */
#ifndef EDGEKIT_SIM_AP_INT_H
#define EDGEKIT_SIM_AP_INT_H

/* HLS pragmas mean nothing to a host compiler. GCC before 13 ignores this request for C++
 * (GCC bug 53431), so edgekit's runner adds -Wno-unknown-pragmas for those compilers only. */
#pragma GCC diagnostic ignored "-Wunknown-pragmas"
/* Loop labels name the loops in HLS synthesis reports; to a host compiler nothing jumps to them. */
#pragma GCC diagnostic ignored "-Wunused-label"

#include <type_traits>

namespace ek_apsim {

constexpr int max_int(int a, int b) { return a > b ? a : b; }

constexpr unsigned long long low_mask(int w) { return w >= 64 ? ~0ULL : (1ULL << w) - 1ULL; }

/* The low w bits of v, read as a signed number. */
constexpr long long sign_extend(unsigned long long v, int w)
{
    return w >= 64 ? static_cast<long long>(v)
                   : ((v >> (w - 1)) & 1ULL) ? static_cast<long long>(v | ~low_mask(w))
                                              : static_cast<long long>(v & low_mask(w));
}

template <typename T>
struct c_int {
    static constexpr bool ok = std::is_integral<T>::value && !std::is_same<T, bool>::value;
    static constexpr int width = static_cast<int>(sizeof(T) * 8);
    static constexpr bool is_signed = std::is_signed<T>::value;
};

/* Result widths of a binary operation, following the rules in the file comment. */
template <int W1, bool S1, int W2, bool S2>
struct widths {
    static constexpr bool S = S1 || S2;
    static constexpr int E1 = W1 + ((S && !S1) ? 1 : 0);
    static constexpr int E2 = W2 + ((S && !S2) ? 1 : 0);
    static constexpr int plus = max_int(E1, E2) + 1;
    static constexpr int mult = W1 + W2;
    static constexpr int logic = max_int(E1, E2);
};

} // namespace ek_apsim

template <int W, bool S>
class ek_apint {
    static_assert(W >= 1 && W <= 64, "edgekit's simulation ap_int supports 1 to 64 bits");

public:
    /* The canonical low W bits; value() reads them with the type's signedness. */
    unsigned long long bits;

    constexpr ek_apint() : bits(0) {}

    template <typename T, typename std::enable_if<ek_apsim::c_int<T>::ok, int>::type = 0>
    constexpr ek_apint(T x) // NOLINT: implicit, as the HLS types are
        : bits(static_cast<unsigned long long>(x) & ek_apsim::low_mask(W))
    {
    }

    constexpr ek_apint(bool x) : bits(x ? 1ULL : 0ULL) {}

    template <int W2, bool S2>
    constexpr ek_apint(const ek_apint<W2, S2> &x) // NOLINT: implicit width change wraps
        : bits(static_cast<unsigned long long>(x.value()) & ek_apsim::low_mask(W))
    {
    }

    constexpr long long value() const
    {
        return S ? ek_apsim::sign_extend(bits, W) : static_cast<long long>(bits);
    }

    constexpr unsigned long long uvalue() const
    {
        return S ? static_cast<unsigned long long>(ek_apsim::sign_extend(bits, W)) : bits;
    }

    using c_type = typename std::conditional<S, long long, unsigned long long>::type;
    constexpr operator c_type() const { return static_cast<c_type>(S ? value() : bits); }

    constexpr int to_int() const { return static_cast<int>(value()); }
    constexpr unsigned to_uint() const { return static_cast<unsigned>(uvalue()); }
    constexpr long long to_int64() const { return value(); }
    constexpr unsigned long long to_uint64() const { return uvalue(); }
    constexpr int length() const { return W; }

    template <int W2, bool S2>
    ek_apint &operator+=(const ek_apint<W2, S2> &o) { return *this = *this + o; }
    template <int W2, bool S2>
    ek_apint &operator-=(const ek_apint<W2, S2> &o) { return *this = *this - o; }
    template <int W2, bool S2>
    ek_apint &operator*=(const ek_apint<W2, S2> &o) { return *this = *this * o; }
    template <typename T, typename std::enable_if<ek_apsim::c_int<T>::ok, int>::type = 0>
    ek_apint &operator+=(T o) { return *this = *this + o; }
    template <typename T, typename std::enable_if<ek_apsim::c_int<T>::ok, int>::type = 0>
    ek_apint &operator-=(T o) { return *this = *this - o; }
    template <typename T, typename std::enable_if<ek_apsim::c_int<T>::ok, int>::type = 0>
    ek_apint &operator*=(T o) { return *this = *this * o; }

    ek_apint &operator++() { return *this = ek_apint(value() + 1); }
    ek_apint &operator--() { return *this = ek_apint(value() - 1); }
    ek_apint operator++(int)
    {
        const ek_apint old = *this;
        ++*this;
        return old;
    }
    ek_apint operator--(int)
    {
        const ek_apint old = *this;
        --*this;
        return old;
    }

    ek_apint<(W < 64 ? W + 1 : 64), true> operator-() const
    {
        static_assert(W < 64, "negation would need 65 bits");
        return ek_apint<(W < 64 ? W + 1 : 64), true>(0ULL - uvalue());
    }
    ek_apint operator~() const { return ek_apint(~bits); }

    /* Bits shifted past the width are lost; a negative count shifts the other way. */
    ek_apint operator<<(int n) const
    {
        if (n < 0) {
            return *this >> -n;
        }
        return n >= 64 ? ek_apint(0) : ek_apint(bits << n);
    }
    ek_apint operator>>(int n) const
    {
        if (n < 0) {
            return *this << -n;
        }
        if (S) {
            const long long v = value();
            return ek_apint(n >= 63 ? (v < 0 ? -1LL : 0LL) : (v >> n));
        }
        return n >= 64 ? ek_apint(0) : ek_apint(bits >> n);
    }
};

template <int W>
using ap_int = ek_apint<W, true>;
template <int W>
using ap_uint = ek_apint<W, false>;

namespace ek_apsim {

template <typename T>
using as_ap = ek_apint<c_int<T>::width, c_int<T>::is_signed>;

/* -1 when a < b, 0 when equal, 1 when a > b, for any mix of signedness. */
template <int W1, bool S1, int W2, bool S2>
constexpr int compare(const ek_apint<W1, S1> &a, const ek_apint<W2, S2> &b)
{
    return (S1 && a.value() < 0) != (S2 && b.value() < 0)
               ? ((S1 && a.value() < 0) ? -1 : 1)
               : (a.uvalue() < b.uvalue() ? -1 : (a.uvalue() > b.uvalue() ? 1 : 0));
}

} // namespace ek_apsim

#define EK_APSIM_ARITH(OP, KIND)                                                                  \
    template <int W1, bool S1, int W2, bool S2>                                                   \
    constexpr ek_apint<ek_apsim::widths<W1, S1, W2, S2>::KIND, ek_apsim::widths<W1, S1, W2, S2>::S> \
    operator OP(const ek_apint<W1, S1> &a, const ek_apint<W2, S2> &b)                             \
    {                                                                                             \
        static_assert(ek_apsim::widths<W1, S1, W2, S2>::KIND <= 64,                               \
                      "result wider than 64 bits is outside edgekit's simulation subset");        \
        return ek_apint<ek_apsim::widths<W1, S1, W2, S2>::KIND, ek_apsim::widths<W1, S1, W2, S2>::S>( \
            a.uvalue() OP b.uvalue());                                                            \
    }                                                                                             \
    template <int W1, bool S1, typename T,                                                        \
              typename std::enable_if<ek_apsim::c_int<T>::ok, int>::type = 0>                     \
    constexpr auto operator OP(const ek_apint<W1, S1> &a, T b)->decltype(a OP ek_apsim::as_ap<T>(b)) \
    {                                                                                             \
        return a OP ek_apsim::as_ap<T>(b);                                                        \
    }                                                                                             \
    template <typename T, int W2, bool S2,                                                        \
              typename std::enable_if<ek_apsim::c_int<T>::ok, int>::type = 0>                     \
    constexpr auto operator OP(T a, const ek_apint<W2, S2> &b)->decltype(ek_apsim::as_ap<T>(a) OP b) \
    {                                                                                             \
        return ek_apsim::as_ap<T>(a) OP b;                                                        \
    }

/* Unsigned 64-bit arithmetic is exact modulo 2^64, and every result width is at most 64 bits,
 * so wrapping the modular result to that width gives the exact value. */
EK_APSIM_ARITH(+, plus)
EK_APSIM_ARITH(-, plus)
EK_APSIM_ARITH(*, mult)
EK_APSIM_ARITH(&, logic)
EK_APSIM_ARITH(|, logic)
EK_APSIM_ARITH(^, logic)
#undef EK_APSIM_ARITH

#define EK_APSIM_COMPARE(OP)                                                                      \
    template <int W1, bool S1, int W2, bool S2>                                                   \
    constexpr bool operator OP(const ek_apint<W1, S1> &a, const ek_apint<W2, S2> &b)              \
    {                                                                                             \
        return ek_apsim::compare(a, b) OP 0;                                                      \
    }                                                                                             \
    template <int W1, bool S1, typename T,                                                        \
              typename std::enable_if<ek_apsim::c_int<T>::ok, int>::type = 0>                     \
    constexpr bool operator OP(const ek_apint<W1, S1> &a, T b)                                    \
    {                                                                                             \
        return ek_apsim::compare(a, ek_apsim::as_ap<T>(b)) OP 0;                                  \
    }                                                                                             \
    template <typename T, int W2, bool S2,                                                        \
              typename std::enable_if<ek_apsim::c_int<T>::ok, int>::type = 0>                     \
    constexpr bool operator OP(T a, const ek_apint<W2, S2> &b)                                    \
    {                                                                                             \
        return ek_apsim::compare(ek_apsim::as_ap<T>(a), b) OP 0;                                  \
    }

EK_APSIM_COMPARE(==)
EK_APSIM_COMPARE(!=)
EK_APSIM_COMPARE(<)
EK_APSIM_COMPARE(<=)
EK_APSIM_COMPARE(>)
EK_APSIM_COMPARE(>=)
#undef EK_APSIM_COMPARE

#endif /* EDGEKIT_SIM_AP_INT_H */
