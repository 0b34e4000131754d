// Scorers with known answers: RULER string match (all / part), passkey exact, GSM8K strict and flexible
// extraction corner cases (commas, signs, decimals, "$", trailing text).
#include <gtest/gtest.h>

#include "ling/eval/scoring.h"

using namespace ling::eval;

TEST(Scoring, RulerStringMatch) {
  EXPECT_DOUBLE_EQ(string_match_all("The numbers are 1234567 and 7654321.", {"1234567", "7654321"}), 1.0);
  EXPECT_DOUBLE_EQ(string_match_all("only 1234567", {"1234567", "7654321"}), 0.5);
  EXPECT_DOUBLE_EQ(string_match_all("nothing", {"1234567", "7654321", "1", "2"}), 0.0);
  EXPECT_DOUBLE_EQ(string_match_all("BRAVE-Tiger", {"brave-tiger"}), 1.0);  // case-insensitive
  EXPECT_DOUBLE_EQ(string_match_all("VAR\tABCDE", {"var\nabcde"}), 1.0);     // control chars -> newline
  EXPECT_DOUBLE_EQ(string_match_all("x", {}), 0.0);
  EXPECT_DOUBLE_EQ(string_match_part("a b c", {"zz", "B"}), 1.0);
  EXPECT_DOUBLE_EQ(string_match_part("a b c", {"zz", "y"}), 0.0);
  EXPECT_EQ(ruler_normalize("  \x01 hi \n"), "hi");
}

TEST(Scoring, Passkey) {
  EXPECT_TRUE(passkey_exact(" 42817. Remember it.", "42817"));
  EXPECT_TRUE(passkey_exact("\n\n42817\nmore", "42817"));
  EXPECT_FALSE(passkey_exact("428170", "42817"));
  EXPECT_FALSE(passkey_exact("4281", "42817"));
  EXPECT_FALSE(passkey_exact("no key\n42817", "42817"));  // first non-empty line only
  EXPECT_FALSE(passkey_exact("", "42817"));
}

TEST(Scoring, NormalizeNumber) {
  EXPECT_EQ(normalize_number("1,000.50"), "1000.5");
  EXPECT_EQ(normalize_number("$1,000"), "1000");
  EXPECT_EQ(normalize_number("-12"), "-12");
  EXPECT_EQ(normalize_number("+12"), "12");
  EXPECT_EQ(normalize_number("18."), "18");
  EXPECT_EQ(normalize_number("3.000"), "3");
  EXPECT_EQ(normalize_number("007"), "7");
  EXPECT_EQ(normalize_number("0.5"), "0.5");
  EXPECT_EQ(normalize_number("-0"), "0");
  EXPECT_EQ(normalize_number("abc"), "");
}

TEST(Scoring, Gsm8kStrict) {
  EXPECT_EQ(gsm8k_strict("She has 5 apples.\n#### 72"), "72");
  EXPECT_EQ(gsm8k_strict("#### 1,234 dollars"), "1234");
  EXPECT_EQ(gsm8k_strict("#### -5"), "-5");
  EXPECT_EQ(gsm8k_strict("#### $1,000.50"), "1000.5");
  EXPECT_EQ(gsm8k_strict("So the answer is 12. The answer is 18."), "18");
  EXPECT_EQ(gsm8k_strict("#### 7 then #### 9"), "7");  // first match
  EXPECT_FALSE(gsm8k_strict("the result is 72").has_value());
  EXPECT_FALSE(gsm8k_strict("#### none").has_value());
}

TEST(Scoring, Gsm8kFlexible) {
  EXPECT_EQ(gsm8k_flexible("First 3, then 4, so 12 apples in total."), "12");
  EXPECT_EQ(gsm8k_flexible("It costs $1,000.50."), "1000.5");
  EXPECT_EQ(gsm8k_flexible("The change is -3 dollars"), "-3");
  EXPECT_EQ(gsm8k_flexible("5 - 3 = 2"), "2");
  EXPECT_EQ(gsm8k_flexible("value 2.50 and more text"), "2.5");
  EXPECT_FALSE(gsm8k_flexible("no digits here").has_value());
}

TEST(Scoring, ScoreSampleGsm8k) {
  auto s = score_sample(MetricKind::Gsm8k, "3 + 4 = 7\n#### 7", {"7"});
  EXPECT_EQ(s.score, 1);
  EXPECT_EQ(s.flexible, 1);
  EXPECT_TRUE(s.correct);
  s = score_sample(MetricKind::Gsm8k, "The total is 1,000 apples", {"1000"});
  EXPECT_EQ(s.score, 0);   // no "####"
  EXPECT_EQ(s.flexible, 1);
  s = score_sample(MetricKind::Gsm8k, "#### 8\nwait, 9", {"8"});
  EXPECT_EQ(s.score, 1);
  EXPECT_EQ(s.flexible, 0);
  s = score_sample(MetricKind::PasskeyExact, "123", {"123"});
  EXPECT_TRUE(s.correct);
  s = score_sample(MetricKind::StringMatchAll, "a", {"a", "b"});
  EXPECT_DOUBLE_EQ(s.score, 0.5);
  EXPECT_FALSE(s.correct);
}
