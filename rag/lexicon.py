"""Closed classes of words, each in one place: what each covers is said beside it.

Only closed classes live here (grammar, units, counters, job titles, the vocabulary of bylines and of
web page layout); nothing names a particular person, firm, outlet or event. Each list is tested on
text written outside every eval set (tests/test_lexicon.py). Anything that is a matter of degree
(how headline-like a line is, how far a sentence answers a question) is a fitted weight, not a list.
"""

from __future__ import annotations

import re

# ---- bylines ---------------------------------------------------------------------------------
# Words a Korean news byline puts before the article's publication time ("입력 2026.03.14 10:22").
PUBLISHED_WORDS = ("기사입력", "최초입력", "최초 입력", "입력", "등록", "송고시간", "송고", "승인", "게재", "발행", "작성",
                   "posted", "published")
# ... and before a later edit's time, which is not the publication date.
EDITED_WORDS = ("최종수정", "최종 수정", "수정", "업데이트", "updated", "modified")
# Titles a byline or sign-off puts after a journalist's name ("홍길동 기자").
JOURNALIST_TITLES = ("기자", "특파원", "선임기자", "수석기자", "객원기자", "인턴기자", "논설위원", "편집위원", "전문기자", "통신원",
                     "기상캐스터", "앵커", "리포터")

# ---- web page layout -------------------------------------------------------------------------
# Tokens of HTML class/id names for page chrome (navigation, lists of other stories, sharing,
# comments, ads, widgets, footers) in Korean and international templates.
LAYOUT_CLASS_WORDS = frozenset("""
nav navi navbar gnb lnb snb menu submenu header footer foot aside sidebar side related relate popular
rank ranking most best hot banner ad ads adv advert advertisement sponsor promotion share sns social
comment comments reply copyright breadcrumb breadcrumbs location tag tags keyword widget weather stock
fortune horoscope login logout member subscribe subscription btn button util utility tool tools toolbar
ticker breaking flash latest more recommend recommended series list newslist issue quick top bottom
family sitemap company corp info policy terms search notice event lang language font print scrap
""".split())
# Tokens of class/id names for the story itself.
ARTICLE_CLASS_WORDS = frozenset("""
article articlebody article_body articleview article_view article_txt news_body newsbody news_view
newsview story story_body body content contents cont txt text view view_con view_cont viewcon
paragraph entry post post_body detail detail_body read read_body
""".split())
# HTML elements that are page chrome by definition.
CHROME_TAGS = frozenset({"nav", "header", "footer", "aside", "form", "button", "select", "option", "label"})

# ---- dates -----------------------------------------------------------------------------------
DATE_PATTERN = re.compile(r"(\d{4})\s*[-./년]\s*(\d{1,2})\s*[-./월]\s*(\d{1,2})")


def iso_date(year: str | int, month: str | int, day: str | int) -> str | None:
    """'YYYY-MM-DD' when the parts make a plausible date, else None."""
    y, m, d = int(year), int(month), int(day)
    if 1990 <= y <= 2100 and 1 <= m <= 12 and 1 <= d <= 31:
        return f"{y:04d}-{m:02d}-{d:02d}"
    return None

# ---- questions -------------------------------------------------------------------------------
# What a question asks for, read from its question word. Korean: the question word and what follows
# it; English: the wh-phrase. Order matters: the first match wins ("몇 명" is a count before "몇").
ASK_KO = (
    ("percent", r"몇\s*(%|퍼센트|프로)|비율은|비중은|점유율은|몇\s*%p"),
    ("duration", r"얼마\s*(동안|만에|간)|몇\s*(시간|분|초|일|주|개월|달|년)\s*(동안|만에|간|째)|며칠\s*(동안|만에)|얼마나\s*(오래|걸)"),
    ("date", r"언제|며칠|몇\s*(년도|년|월|일)(?!\s*(동안|만에|간|째))|무슨\s*요일|날짜|시기|몇\s*시(?!간)"),
    ("count", r"몇\s*[가-힣]{0,3}"),
    ("money", r"얼마(를|의)?\s*(투자|들|받|벌|쓰|썼|지급|지원|책정|배정|팔|판|거래|지불|내|냈)|얼마에|금액|가격|비용|액수|"
              r"몇\s*(원|달러)|(값|료|비|금|액|가)(은|는|이|가)?\s*얼마"),
    ("person", r"누구|누가|누군|어떤\s*사람|어느\s*(선수|의원|장관|교수|감독|인물|투수|타자|작가|배우|가수|멤버)|"
               r"(선수|투수|타자|감독|코치|위원장|장관|의원|교수|대표|사장|회장|작가|PD|연출자|배우|가수)(은|는|이|가)\s*\??\s*$"),
    ("place", r"어디|어느\s*(곳|지역|도시|나라|국가|장소|동네|시|도|군|구|항|역|경기장|구장)"),
    ("org", r"어느\s*(회사|기업|업체|팀|구단|부처|기관|대학|학교|병원|단체|정당|은행|방송사|언론사|그룹)|어떤\s*(회사|기업|업체|팀|구단|기관)|"
            r"어느\s*[가-힣]+"),
    ("reason", r"왜|이유|까닭|무엇\s*때문|어째서"),
    ("number", r"얼마"),  # how much of anything (an amount of money is asked with a money word)
)
ASK_EN = (
    ("percent", r"\bwhat (percentage|percent|share|proportion|rate)\b|\bhow many percent"),
    ("duration", r"\bhow long\b|\bfor how many (hours|days|weeks|months|years|minutes)\b"),
    ("date", r"\bwhen\b|\bwhat (date|day|year|month|time)\b|\bwhich (date|day|year|month)\b|\bwhat time\b"),
    ("count", r"\bhow many\b"),
    ("money", r"\bhow much money\b|\bwhat (price|amount of money|sum|budget|cost|fee)\b|"
              r"\bhow much\b[^?]*\b(cost|costs|paid|pay|pays|spend|spent|invest|invested|worth|fee|price|won|dollars|raise|raised|earn|earned|sell|sold|charge|charged)\b"),
    ("person", r"\bwho\b|\bwhom\b|\bwhose\b|\b(which|what)\b(?:\s+[\w'-]+){0,3}?\s+(player|pitcher|lawmaker|minister|official|"
               r"executive|person|professor|coach|chairman|president|ceo|director|judge|member|singer|actor|manager|head)s?\b"),
    ("place", r"\bwhere\b|\b(which|what)\b(?:\s+[\w'-]+){0,2}?\s+(city|country|region|province|town|place|port|station|"
              r"stadium|district|county|island|venue|site|area)s?\b"),
    ("org", r"\b(which|what)\b(?:\s+[\w'-]+){0,2}?\s+(company|companies|firm|team|club|ministry|agency|university|school|"
            r"hospital|party|bank|broadcaster|group|organization|organisation|carrier|automaker|chipmaker|operator)\b"),
    ("reason", r"\bwhy\b|\bwhat (caused|reason)\b|\bfor what reason\b"),
    ("number", r"\bhow much\b|\bby how much\b"),
)

# Korean counters (what a count is of: "몇 명" -> 명) and measure units after a number.
COUNTERS = ("명", "곳", "개", "건", "대", "채", "가구", "세대", "척", "마리", "권", "편", "회", "차례", "번", "개국", "종", "표",
            "석", "골", "승", "패", "경기", "타점", "홈런", "안타", "점", "세", "층", "동", "호", "병", "그루", "곡", "위", "개사",
            "개교", "개소", "팀", "개월", "달", "주", "일", "년", "시간", "분", "초", "배", "톤", "장", "벌", "쌍", "포기")
UNITS = ("%", "％", "퍼센트", "%p", "%포인트", "포인트", "배", "mm", "㎜", "cm", "m", "km", "㎞", "㎡", "평", "㏊", "ha", "t", "톤",
         "kg", "g", "℃", "도", "GB", "TB", "MW", "GW", "kW", "GWh", "kWh", "W", "nm", "나노", "달러", "원", "엔", "위안", "유로",
         "파운드", "mL", "L", "ℓ", "bp", "타수", "이닝", "미터", "킬로미터", "피트", "마일", "기가와트시", "메가와트시",
         "킬로와트시", "와트시", "기가와트", "메가와트", "킬로와트", "와트", "기가바이트", "테라바이트", "킬로그램", "그램", "리터",
         "헥타르", "제곱미터", "평방미터")
CURRENCIES = ("원", "달러", "엔", "위안", "유로", "파운드", "루피", "동", "바트")
DURATION_UNITS = ("초", "분", "시간", "일", "주", "주일", "개월", "달", "년", "세기")
DATE_WORDS = ("오전", "오후", "새벽", "밤", "저녁", "아침", "낮", "지난해", "올해", "내년", "작년", "이날", "전날", "다음날", "이튿날",
              "어제", "오늘", "내일", "월요일", "화요일", "수요일", "목요일", "금요일", "토요일", "일요일")
# Words that state a cause or purpose.
REASON_WORDS = ("때문", "위해", "위한", "탓", "영향", "로 인해", "으로 인해", "따라", "이유", "원인", "덕분", "여파", "우려", "결과")
# Job titles that follow a name in Korean news ("정하윤 한국해양대 교수").
TITLES = ("대통령", "총리", "장관", "차관", "청장", "처장", "실장", "국장", "과장", "팀장", "본부장", "센터장", "단장", "부장", "차장",
          "원장", "소장", "이사장", "총장", "교장", "교감", "교수", "연구원", "연구위원", "박사", "위원장", "위원", "의원", "의장",
          "대변인", "시장", "도지사", "지사", "군수", "구청장", "회장", "부회장", "사장", "부사장", "대표", "대표이사", "전무", "상무",
          "이사", "최고경영자", "CEO", "CTO", "CFO", "감독", "코치", "선수", "주장", "투수", "타자", "포수", "내야수", "외야수",
          "공격수", "수비수", "미드필더", "골키퍼", "회원", "관계자", "판사", "검사", "변호사", "경찰", "경위", "경감", "소방관",
          "기자", "앵커", "작가", "배우", "가수", "멤버", "씨", "군", "양", "총재", "부총재", "이사회", "심의관", "정책관", "주무관")
# Endings of place and organisation names.
PLACE_SUFFIXES = ("특별시", "광역시", "특별자치시", "특별자치도", "시", "도", "군", "구", "읍", "면", "동", "리", "항", "역", "공항",
                  "산", "강", "천", "섬", "공원", "캠퍼스", "경기장", "구장", "단지", "산단", "터미널", "해수욕장", "고속도로")
ORG_SUFFIXES = ("부", "처", "청", "원", "위원회", "공사", "공단", "협회", "재단", "연구원", "연구소", "은행", "그룹", "전자", "대학교",
                "대학", "병원", "구단", "학교", "증권", "보험", "건설", "통신", "방송", "일보", "신문", "뉴스", "연맹", "조합", "센터",
                "法人", "법인", "회사", "기업", "당", "본부", "사령부", "경찰서", "소방서", "법원", "검찰청")

# ---- follow-ups ------------------------------------------------------------------------------
# Words that tie a question to the one before it: continuation markers at the start, and pronouns
# or demonstratives that point back ("그 사람", "거기", "what about", "he", "that company").
FOLLOWUP_START_KO = ("그럼", "그러면", "그리고", "또", "그밖에", "그 밖에", "그중", "그 중", "이어", "반면", "아울러", "그래서")
ANAPHORS_KO = ("그", "그들", "그녀", "그곳", "거기", "그때", "당시", "해당", "이곳", "저곳", "그분", "그쪽", "그 사람", "그 회사",
               "그 팀", "그 선수", "이 회사", "이 사람")
FOLLOWUP_START_EN = ("and", "but", "also", "then", "so", "what about", "how about", "and what about")
ANAPHORS_EN = ("he", "she", "they", "his", "her", "their", "them", "him", "there")  # "it", "that" point ahead as often
# A short question is complete when it says what it asks about: in Korean, a noun marked as its
# topic or subject by one of these particles, with a predicate ("올트먼은 언제 방한했나?"); in English,
# a name after a question word or auxiliary that opens it ("What is Stargate?").
TOPIC_PARTICLES_KO = ("은", "는", "이", "가")
QUESTION_OPENERS_EN = ("what", "who", "whom", "whose", "when", "where", "why", "how", "which", "is", "are", "was", "were",
                       "do", "does", "did", "has", "have", "had", "can", "could", "will", "would", "should")
# Korean question words, and the particles/endings Kiwi may leave as content morphemes (a noun that
# is one of these asks; it does not name what is asked about).
QUESTION_WORDS_KO = frozenset({"누구", "누가", "어디", "언제", "무엇", "무슨", "몇", "얼마", "어느", "어떤", "어떻", "왜", "뭐",
                               "얼마나", "어떠", "며칠", "이유", "까닭", "어째서"})
