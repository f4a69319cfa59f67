"""Builds common-passwords.txt: the most used passwords of public breach rankings, plus the
predictable variants people make of them (years, digit runs, keyboard walks).

Run `python portal/data/make_common_passwords.py` after editing the word lists; the output is
committed so the portal never needs a download. Entries are lowercase: the check ignores case."""
from pathlib import Path

# The head of the well-known public rankings (breach corpora, yearly "worst password" lists).
TOP = """
123456 password 12345678 qwerty 123456789 12345 1234 111111 1234567 dragon 123123 baseball
abc123 football monkey letmein 696969 shadow master 666666 qwertyuiop 123321 mustang
1234567890 michael 654321 superman 1qaz2wsx 7777777 121212 000000 qazwsx 123qwe killer
trustno1 jordan jennifer zxcvbnm asdfgh hunter buster soccer harley batman andrew tigger
sunshine iloveyou 2000 charlie robert thomas hockey ranger daniel starwars klaster 112233
george computer michelle jessica pepper 1111 zxcvbn 555555 11111111 131313 freedom 777777
pass maggie 159753 aaaaaa ginger princess joshua cheese amanda summer love ashley 6969
nicole chelsea biteme matthew access yankees 987654321 dallas austin thunder taylor matrix
william corvette hello martin heather secret merlin diamond 1234qwer gfhjkm hammer silver
222222 88888888 anthony justin test bailey q1w2e3r4t5 patrick internet scooter orange 11111
golfer cookie richard samantha bigdog guitar jackson whatever mickey chicken sparky snoopy
maverick phoenix camaro peanut morgan welcome falcon cowboy ferrari samsung andrea smokey
steelers joseph mercedes dakota arsenal eagles melissa boomer booboo spider nascar monster
tigers yellow xxxxxx 123123123 gateway marina diablo bulldog qwer1234 compaq purple hardcore
banana junior hannah 123654 porsche lakers iceman money cowboys 987654 london tennis 999999
ncc1701 coffee scooby 0000 miller boston q1w2e3r4 brandon yamaha chester mother forever
johnny edward 333333 oliver redsox player nikita knight fender barney midnight please brandy
chicago badboy slayer rangers charles angel flower rabbit wizard bigdick jasper enter
rachel chris steven winner adidas victoria natasha 1q2w3e4r jasmine winter prince panties
marine ghbdtn fishing cocacola casper james 232323 raiders 888888 marlboro gandalf asdfasdf
crystal 87654321 12344321 golden 8675309 apple123 hunter2 iloveyou1 password1 password123
password12 password1234 passw0rd p@ssw0rd p@ssword pa55word pa55w0rd passwort motdepasse
contrasena senha parola wachtwoord haslo salasana adgangskode losenord qwertz azerty
qwerty123 qwerty1 qwertyu qwerty12 qwerty1234 1q2w3e 1q2w3e4r5t 1q2w3e4r5t6y zaq12wsx
zaq1zaq1 zaq1xsw2 !qaz2wsx 1qazxsw2 qazwsxedc qazxswedc 1qaz2wsx3edc asdfghjkl asdf1234
asdfgh123 zxcvbnm123 mnbvcxz poiuytrewq lkjhgfdsa 147258369 147258 159357 741852963
963852741 123789 456789 789456123 123456a 123456q a123456 aa123456 abc12345 abcd1234
abcdef abcdefg abcdefgh abc123456 1234abcd 12345a 12345qwert 123abc 123qweasd 123qweasdzxc
qweasdzxc qweasd qwe123 qwe123qwe 1qaz1qaz 1234554321 123454321 1122334455 11223344
12121212 123321123 10203040 102030 112233445566 121314 123456654321 654321123456
sunshine1 princess1 football1 baseball1 monkey1 dragon1 shadow1 superman1 michael1
jennifer1 jordan23 letmein1 welcome1 welcome123 admin admin123 admin1234 administrator
root toor changeme changeit default guest user login secret123 test123 test1234 testing
testtest demo demo123 temp temp123 temppass password! password1! p4ssword letmein123
trustno1! iloveyou2 iloveu loveyou lovely loveme love123 mylove babygirl baby123 angel1
angels butterfly flower1 friends friend family family1 blessed blessing faith jesus jesus1
christ god godisgood heaven hope grace trinity lucky lucky7 lucky13 fuckyou fuckoff shit
pussy asshole bitch sex sexy sexsex hotdog hottie cutie cute babe baby beauty pretty
girl girls boys boy lover kiss kisses hello123 hello1 hi hey whatsup master1 master123
killer1 soccer1 hockey1 basketball tennis1 golf golfing football12 baseball12 soccer12
dolphin dolphins tiger tigers1 lion lion123 eagle eagle1 bear bears falcon1 shark sharks
panther panthers wolf wolves fox cat cats kitty kitten dog doggy dogs puppy pepper1 buddy
buddy1 max max123 maxwell charlie1 bella bella1 lucy molly daisy rocky rocky1 sammy sam123
jack jackie harry potter harrypotter hogwarts voldemort pokemon pikachu naruto sasuke
goku dragonball onepiece minecraft fortnite roblox zelda mario luigi sonic nintendo
playstation xbox360 xbox gamer gaming warcraft starcraft diablo2 counter halo spiderman
ironman hulk thor avengers marvel superman12 batman1 joker starwars1 skywalker jedi yoda
darthvader vader startrek trekkie enterprise matrix1 neo morpheus gandalf1 frodo hobbit
legolas aragorn mordor sauron  chelsea1 arsenal1 liverpool manchester manutd barcelona
realmadrid juventus milan inter bayern celtic rangers1 everton newcastle tottenham
cowboys1 steelers1 packers patriots giants yankees1 redsox1 mets dodgers lakers1 bulls
celtics knicks heat warriors broncos raiders1 chargers seahawks ravens bengals jets
dolphins1 vikings saints bears1 lions browns texans titans colts jaguars chiefs rams
49ers niners hawkeyes gators buckeyes wolverine wolverines spartans trojans longhorns
computer1 internet1 google facebook twitter instagram youtube yahoo hotmail gmail
linkedin myspace amazon apple microsoft windows windows7 linux ubuntu android iphone
samsung1 nokia motorola blackberry dell lenovo sony toshiba canon nikon
mustang1 corvette1 ferrari1 porsche1 bmw mercedes1 audi honda toyota nissan mazda
subaru ford chevy chevrolet dodge jeep harley1 yamaha1 suzuki kawasaki ducati
summer1 winter1 spring autumn fall january february march april may june july august
september october november december monday tuesday wednesday thursday friday saturday
sunday morning evening night midnight1 sunrise sunset rainbow thunder1 lightning storm
ocean river mountain forest garden flowers orange1 banana1 apple cherry strawberry lemon
peach mango chocolate candy sugar honey cookie1 cupcake pizza burger coffee1 beer vodka
whiskey tequila wine jameson guinness budweiser heineken corona marlboro1 camel
money1 money123 cash dollar dollars rich million millions gold golden1 silver1 diamond1
platinum crystal1 ruby emerald pearl jewel treasure
america usa canada mexico brazil england london1 paris france germany berlin italy rome
spain madrid russia moscow china beijing japan tokyo india delhi australia sydney
california texas florida newyork chicago1 boston1 dallas1 houston phoenix1 denver
seattle miami atlanta vegas hawaii alaska
michael12 jessica1 ashley1 amanda1 daniel1 david david1 joshua1 james1 john john123
robert1 william1 richard1 thomas1 charles1 christopher chris123 matthew1 anthony1 mark
donald steven1 paul andrew1 joshua123 kevin brian george1 edward1 ronald timothy jason
jeffrey ryan jacob gary nicholas eric stephen jonathan larry justin1 scott brandon1
frank benjamin gregory samuel raymond patrick1 alexander jack123 dennis jerry tyler
aaron jose henry adam douglas nathan peter zachary kyle walter harold jeremy ethan carl
keith roger gerald christian terry sean arthur austin1 noah lawrence jesse joe bryan
billy jordan1 albert dylan bruce willie gabriel alan juan logan wayne ralph roy eugene
randy vincent russell louis philip bobby johnny1 bradley mary patricia linda barbara
elizabeth jennifer12 maria susan margaret dorothy lisa nancy karen betty helen sandra
donna carol ruth sharon michelle1 laura sarah kimberly deborah jessica12 shirley
cynthia angela melissa1 brenda amy anna rebecca virginia kathleen pamela martha debra
amanda12 stephanie carolyn christine marie janet catherine frances ann joyce diane
alice julie heather1 teresa doris gloria evelyn jean cheryl mildred katherine joan
ashley12 judith rose janice kelly nicole1 judy christina kathy theresa beverly denise
tammy irene jane lori rachel1 marilyn andrea1 kathryn louise sara anne jacqueline
wanda bonnie julia ruby1 lois tina phyllis norma paula diana annie lillian emily robin
peggy crystal12 gladys rita dawn connie florence tracy edna tiffany carmen rosa cindy
grace1 wendy victoria1 edith kim sherry sylvia josephine thelma shannon sheila ethel
ellen elaine marjorie carrie charlotte monica esther pauline emma juanita anita rhonda
hazel amber eva debbie april1 leslie clara lucille jamie joanne eleanor valerie danielle
megan alicia suzanne michele gail bertha darlene veronica jill erin geraldine lauren
cathy joann lorraine lynn sally regina erica beatrice dolores bernice audrey yvonne
annette june samantha1 marion dana stacy ana renee ida vivian roberta holly brittany
melanie loretta yolanda jeanette laurie katie kristen vanessa alma sue elsie beth
jeanne vicki carla tara rosemary eileen terri gertrude lucy1 tonya ella stacey wilma
gina kristin jessie natalie agnes vera willie1 charlene bessie delores melinda pearl1
arlene maureen colleen allison tamara joy georgia constance lillie claudia jackie1
marcia tanya nellie minnie marlene heidi glenda lydia viola courtney marian stella
caroline dora jo vickie mattie terry1 maxine irma mabel marsha myrtle lena christy
deanna patsy hilda gwendolyn jennie nora margie nina cassandra leah penny kay priscilla
naomi carole brandy1 olga billie dianne tracey leona jenny felicia sonia miriam velma
becky bobbie violet kristina toni misty mae shelly daisy1 ramona sherri erika katrina
claire
iotlock mailbox parcelbox keypad lockbox padlock unlock unlocked opensesame letmein2
doorbell frontdoor backdoor housekey homesweethome myhouse myhome household
"""

SUFFIXES = ["1", "12", "123", "1234", "12345", "123456", "!", "1!", "12!", "123!", "!!", "01",
            "02", "07", "10", "11", "13", "21", "22", "23", "69", "77", "88", "99", "007", "111",
            "000", "2k", "@123", "#1", "$"]
YEARS = [str(y) for y in range(1950, 2031)]
CORE_SIZE = 320
KEYBOARD_ROWS = ["1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm", "0987654321", "poiuytrewq",
                 "lkjhgfdsa", "mnbvcxz", "qwertzuiop", "azertyuiop", "1qaz2wsx3edc4rfv5tgb",
                 "qazwsxedcrfvtgbyhnujm", "1q2w3e4r5t6y7u8i9o0p", "zaq12wsxcde34rfvbgt5",
                 "q1w2e3r4t5y6u7i8o9p0", "a1s2d3f4g5h6j7k8l9", "!qaz@wsx#edc", "!@#$%^&*()"]


def _leet(word: str) -> set[str]:
    table = str.maketrans({"a": "@", "o": "0", "e": "3", "i": "1", "s": "$"})
    swapped = word.translate(table)
    return {swapped, word.replace("a", "@"), word.replace("o", "0"), word.replace("s", "5")} - {word}


def build() -> list[str]:
    seen: dict[str, None] = {}

    def add(value: str) -> None:
        value = value.strip().lower()
        if value:
            seen.setdefault(value, None)

    base = TOP.split()
    # The head of the ranking gets every variant; the long tail (names, teams, places) the
    # common suffixes and recent years only, which keeps the list small enough to hold in memory.
    core = [w for w in base[:CORE_SIZE] if w.isalpha()]
    for word in base:
        add(word)
    for word in base:
        if not word.isalpha():
            continue
        for suffix in SUFFIXES[:8]:
            add(word + suffix)
        for year in YEARS[-12:]:
            add(word + year)
    for word in core:
        for suffix in SUFFIXES:
            add(word + suffix)
        for year in YEARS[20:]:
            add(word + year)
            add(word + year[2:])
        for variant in _leet(word):
            add(variant)
            add(variant + "1")
            add(variant + "123")
            add(variant + "!")
        add(word + word)
        add("my" + word)
        add("ilove" + word)
    for row in KEYBOARD_ROWS:
        for start in range(len(row)):
            for end in range(start + 4, len(row) + 1):
                add(row[start:end])
        add(row + row[::-1])
    for digit in "0123456789":
        for length in range(4, 17):
            add(digit * length)
    for char in "abcdefghijklmnopqrstuvwxyz":
        for length in range(6, 13):
            add(char * length)
    digits = "12345678901234567890"
    for start in range(10):
        for length in range(4, 13):
            add(digits[start:start + length])
            add(digits[start:start + length][::-1])
    for pair in ("12", "21", "69", "13", "11", "22", "00", "99", "ab", "xy", "01", "10"):
        for repeat in range(3, 9):
            add(pair * repeat)
    for trio in ("123", "abc", "321", "qwe", "asd", "zxc", "111", "777", "007", "666", "147"):
        for repeat in range(2, 6):
            add(trio * repeat)
    for year in YEARS:
        add(year)
        add(year + year)
        for word in ("password", "welcome", "summer", "winter", "spring", "autumn", "qwerty",
                     "iloveyou", "letmein", "monkey", "dragon", "football", "baseball", "love",
                     "baby", "happy", "july", "june", "march", "april", "august", "october",
                     "december", "january", "christmas", "birthday"):
            add(word + year)
            add(word.capitalize() + year + "!")
    for birth_year in range(1970, 2011):
        for day, month in ((1, 1), (12, 12), (11, 11), (10, 10), (25, 12), (14, 2), (1, 9)):
            add(f"{day:02d}{month:02d}{birth_year}")
            add(f"{month:02d}{day:02d}{birth_year}")
    return list(seen)


if __name__ == "__main__":
    out = Path(__file__).with_name("common-passwords.txt")
    words = build()
    out.write_text(
        "# The most common passwords and their predictable variants; refused at sign-up and\n"
        "# password change. Lowercase; compared without regard to case. Made by\n"
        "# make_common_passwords.py.\n" + "\n".join(words) + "\n"
    )
    print(f"{len(words)} entries, {sum(len(w) >= 8 for w in words)} of 8 or more characters -> {out}")
