"""Name, street and postcode tables for the synthetic population, most frequent first.

Each list is the head of a national frequency ranking, recalled from public statistics (US Census 2010
surnames and SSA baby names, UK ONS baby names, German, Spanish INE, French INSEE, Italian ISTAT and
Dutch Meertens Institute surname and first-name rankings) and is **approximate**: the order is right in
spirit, not to the rank. Frequencies are assigned as a Zipf law over the rank (see
:mod:`node.generator.people`). Because each list is only a head of a long-tailed distribution, exact-name
collisions are more common here than in a real population, which is the harder case for linkage.

Postcodes are real-looking codes of large cities, weighted by rank so that a few areas hold many people.
Phone numbers and national ids are made up in :mod:`node.generator.people`.

Multi-word entries use ``_`` for a space (``van_der_Berg``).
"""

from __future__ import annotations

__all__ = ["CHINESE_FAMILY", "CHINESE_GIVEN", "COUNTRIES", "FAMILY", "GIVEN", "POSTCODES", "STREETS"]


def _words(text: str) -> tuple[str, ...]:
    return tuple(word.replace("_", " ") for word in text.split())


# Countries a site may be in, with the locale of their names and streets.
COUNTRIES: dict[str, str] = {
    "GB": "en",
    "US": "en",
    "DE": "de",
    "ES": "es",
    "FR": "fr",
    "IT": "it",
    "NL": "nl",
}

FAMILY: dict[str, tuple[str, ...]] = {
    "en": _words("""
        Smith Johnson Williams Brown Jones Miller Davis Wilson Taylor Anderson Thomas Jackson White Harris
        Martin Thompson Moore Clark Lewis Robinson Walker Young Allen King Wright Scott Hill Green Adams
        Baker Hall Nelson Carter Mitchell Roberts Turner Phillips Campbell Parker Evans Edwards Collins
        Stewart Morris Murphy Cook Rogers Morgan Cooper Peterson Reed Bailey Bell Kelly Howard Ward Cox
        Richardson Wood Watson Brooks Bennett Gray Hughes Price Sanders Patel Khan Singh Ali
    """),
    "de": _words("""
        Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Schäfer Koch Bauer
        Richter Klein Wolf Schröder Neumann Schwarz Zimmermann Braun Krüger Hofmann Hartmann Lange Schmitt
        Werner Schmitz Krause Meier Lehmann Schmid Schulze Maier Köhler Herrmann König Walter Mayer Huber
        Kaiser Fuchs Peters Lang Scholz Möller Weiß Jung Hahn Schubert Vogel Friedrich Keller Günther Frank
        Berger Winkler Roth Beck Lorenz Baumann Franke Albrecht Yılmaz Kaya
    """),
    "es": _words("""
        García Rodríguez González Fernández López Martínez Sánchez Pérez Gómez Martín Jiménez Ruiz Hernández
        Díaz Moreno Muñoz Álvarez Romero Alonso Gutiérrez Navarro Torres Domínguez Vázquez Ramos Gil Ramírez
        Serrano Blanco Molina Morales Suárez Ortega Delgado Castro Ortiz Rubio Marín Sanz Núñez Iglesias
        Medina Garrido Cortés Castillo Santos Lozano Guerrero Cano Prieto Méndez Cruz Calvo Gallego Vidal
        León Márquez Herrera Peña Flores
    """),
    "fr": _words("""
        Martin Bernard Thomas Petit Robert Richard Durand Dubois Moreau Laurent Simon Michel Lefebvre Leroy
        Roux David Bertrand Morel Fournier Girard Bonnet Dupont Lambert Fontaine Rousseau Vincent Muller
        Lefèvre Faure André Mercier Blanc Guérin Boyer Garnier Chevalier François Legrand Gauthier Garcia
        Perrin Robin Clément Morin Nicolas Henry Roussel Mathieu Gautier Masson Marchand Duval Denis Dumont
        Marie Lemaire Noël Meyer Dufour Meunier
    """),
    "it": _words("""
        Rossi Russo Ferrari Esposito Bianchi Romano Colombo Ricci Marino Greco Bruno Gallo Conti De_Luca
        Mancini Costa Giordano Rizzo Lombardi Moretti Barbieri Fontana Santoro Mariani Rinaldi Caruso
        Ferrara Galli Martini Leone Longo Gentile Martinelli Vitale Lombardo Serra Coppola De_Santis
        D'Angelo Marchetti Parisi Villa Conte Ferraro Ferri Fabbri Bianco Marini Grasso Valentini Messina
        Sala De_Angelis Gatti Pellegrini Palumbo Sanna Farina Rizzi Monti
    """),
    "nl": _words("""
        de_Jong Jansen de_Vries van_den_Berg van_Dijk Bakker Janssen Visser Smit Meijer de_Boer Mulder
        de_Groot Bos Vos Peters Hendriks van_Leeuwen Dekker Brouwer de_Wit Dijkstra Smits de_Graaf
        van_der_Meer van_der_Linden Kok Jacobs de_Haan Vermeulen van_den_Heuvel van_der_Veen van_den_Broek
        de_Bruijn de_Bruin van_der_Heijden Schouten van_Beek Willems van_Vliet van_de_Ven Hoekstra Maas
        Verhoeven Koster van_Dam van_der_Wal Prins Blom Huisman Peeters de_Jonge Kuipers van_Veen Post
        Kuiper Veenstra Kramer van_den_Brink Scholten
    """),
}

# Given names by locale and sex ("male"/"female").
GIVEN: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "male": _words("""
            James John Robert Michael William David Richard Joseph Thomas Charles Christopher Daniel Matthew
            Anthony Mark Donald Steven Paul Andrew Joshua Kenneth Kevin Brian George Timothy Ronald Edward
            Jason Jeffrey Ryan Jacob Gary Oliver Harry Jack Noah Liam Mohammed
        """),
        "female": _words("""
            Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy Betty
            Margaret Sandra Ashley Kimberly Emily Donna Michelle Carol Amanda Dorothy Melissa Deborah
            Stephanie Rebecca Sharon Laura Olivia Emma Amelia Sophia Isla
        """),
    },
    "de": {
        "male": _words("""
            Peter Michael Thomas Andreas Wolfgang Klaus Jürgen Stefan Hans Christian Uwe Werner Frank Bernd
            Matthias Markus Alexander Tobias Jan Lukas Felix Leon Paul Maximilian Jonas Günter Dieter Horst
            Manfred Karl Heinz
        """),
        "female": _words("""
            Ursula Sabine Monika Petra Andrea Gabriele Claudia Susanne Renate Birgit Karin Helga Stefanie
            Julia Anna Katharina Sandra Nicole Christina Lena Lea Marie Sophie Hannah Emma Mia Laura Ingrid
            Gisela Brigitte Elke
        """),
    },
    "es": {
        "male": _words("""
            Antonio José Manuel Francisco David Juan Javier Daniel Carlos Jesús Alejandro Miguel Rafael
            Pablo Pedro Ángel Sergio Fernando Jorge Luis Alberto Álvaro Adrián Diego Raúl Enrique Hugo Mateo
            Lucas Martín
        """),
        "female": _words("""
            María Carmen Ana Isabel Laura Cristina Marta Dolores Lucía Francisca Antonia Elena Pilar Sara
            Paula Mercedes Raquel Rosa Manuela Julia Beatriz Sofía Alba Irene Silvia Rocío Teresa Patricia
            Andrea Nuria
        """),
    },
    "fr": {
        "male": _words("""
            Jean Pierre Michel André Philippe Alain Jacques Bernard René Louis Nicolas Christophe Patrick
            Daniel Frédéric Laurent Éric Stéphane Julien Thomas Hugo Lucas Gabriel Arthur Léo Raphaël
            Antoine Mathieu Olivier François
        """),
        "female": _words("""
            Marie Jeanne Françoise Monique Catherine Nathalie Isabelle Sylvie Anne Martine Nicole Christine
            Sophie Sandrine Valérie Céline Julie Camille Emma Léa Chloé Manon Inès Louise Jade Alice Élodie
            Aurélie Brigitte Hélène
        """),
    },
    "it": {
        "male": _words("""
            Giuseppe Giovanni Antonio Mario Luigi Francesco Angelo Vincenzo Pietro Salvatore Carlo Franco
            Domenico Bruno Paolo Michele Giorgio Aldo Sergio Luciano Marco Alessandro Andrea Matteo Lorenzo
            Leonardo Davide Stefano Roberto Luca
        """),
        "female": _words("""
            Maria Anna Giuseppina Rosa Angela Giovanna Teresa Lucia Carmela Caterina Francesca Antonietta
            Carla Elena Concetta Rita Margherita Franca Paola Giulia Sofia Aurora Chiara Alessia Martina
            Sara Valentina Federica Laura Silvia
        """),
    },
    "nl": {
        "male": _words("""
            Jan Johannes Cornelis Hendrik Willem Pieter Gerrit Jacobus Adrianus Petrus Daan Sem Lucas Bram
            Thijs Ruben Lars Sander Bas Mark Dennis Jeroen Niels Tim Kees Henk Joost Wouter Martijn Stijn
        """),
        "female": _words("""
            Maria Johanna Cornelia Anna Wilhelmina Elisabeth Hendrika Petronella Emma Julia Sophie Tess Lisa
            Anne Sanne Fleur Eva Iris Lotte Femke Inge Monique Linda Marieke Esther Ingrid Ellen Annemarie
            Noor Saskia
        """),
    },
}


# Chinese names: (pinyin, Han characters), most frequent first (family names after the 2020 census
# ranking; given names are common single- and two-character names).
def _han(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((pinyin, han) for pinyin, han in (pair.split(":") for pair in text.split()))


CHINESE_FAMILY: tuple[tuple[str, str], ...] = _han(
    """
            Wang:王 Li:李 Zhang:张 Liu:刘 Chen:陈 Yang:杨 Huang:黄 Zhao:赵 Wu:吴 Zhou:周 Xu:徐 Sun:孙 Ma:马
            Zhu:朱 Hu:胡 Guo:郭 He:何 Gao:高 Lin:林 Luo:罗 Zheng:郑 Liang:梁 Xie:谢 Song:宋 Tang:唐 Han:韩
            Feng:冯 Deng:邓 Cao:曹 Peng:彭
    """
)
CHINESE_GIVEN: dict[str, tuple[tuple[str, str], ...]] = {
    sex: _han(text)
    for sex, text in {
        "male": """
            Wei:伟 Qiang:强 Lei:磊 Jun:军 Yong:勇 Jie:杰 Tao:涛 Ming:明 Chao:超 Hao:浩 Jian:建 Peng:鹏 Hui:辉
            Bin:斌 Gang:刚 Zhiqiang:志强 Jianhua:建华 Haoran:浩然 Yuxuan:宇轩 Zihao:子豪
        """,
        "female": """
            Fang:芳 Na:娜 Min:敏 Jing:静 Li:丽 Yan:艳 Juan:娟 Xiuying:秀英 Xia:霞 Ping:平 Yan:燕 Ling:玲
            Ting:婷 Hong:红 Lan:兰 Xin:欣 Yuting:雨婷 Zixuan:梓萱 Shuang:爽 Hui:慧
        """,
    }.items()
}

STREETS: dict[str, tuple[str, ...]] = {
    "en": _words("""
        High_Street Station_Road Main_Street Church_Street Park_Road Victoria_Road London_Road Green_Lane
        Oak_Avenue Maple_Street Elm_Street Washington_Avenue Mill_Lane King_Street
    """),
    "de": _words("""
        Hauptstraße Schulstraße Gartenstraße Bahnhofstraße Dorfstraße Bergstraße Birkenweg Lindenstraße
        Kirchstraße Waldstraße Ringstraße Goethestraße Schillerstraße Rosenweg
    """),
    "es": _words("""
        Calle_Mayor Calle_Real Calle_Nueva Plaza_Mayor Calle_de_la_Iglesia Avenida_de_la_Constitución
        Calle_del_Sol Calle_San_José Calle_Doctor_Fleming Calle_Cervantes Gran_Vía Calle_Alcalá
    """),
    "fr": _words("""
        Rue_de_l'Église Grande_Rue Rue_Principale Rue_du_Moulin Place_de_l'Église Rue_de_la_Mairie
        Rue_Pasteur Rue_Victor_Hugo Avenue_Jean_Jaurès Rue_de_la_Gare Rue_des_Écoles Rue_de_la_Paix
    """),
    "it": _words("""
        Via_Roma Via_Garibaldi Via_Marconi Via_Mazzini Via_Cavour Via_Dante Via_Verdi Via_Vittorio_Emanuele
        Corso_Italia Via_Matteotti Via_San_Francesco Piazza_del_Popolo
    """),
    "nl": _words("""
        Kerkstraat Schoolstraat Molenstraat Dorpsstraat Stationsweg Julianastraat Wilhelminastraat
        Beatrixstraat Nieuwstraat Molenweg Industrieweg Kastanjelaan
    """),
}

# Postcodes by country: (postcode, city, state); most populous first.
POSTCODES: dict[str, tuple[tuple[str, str, str], ...]] = {
    country: tuple(
        (parts[0], parts[1], parts[2] if len(parts) > 2 else "")
        for parts in (line.strip().split("|") for line in text.strip().splitlines())
    )
    for country, text in {
        "GB": """
            E1 4NS|London
            SW17 0RE|London
            B15 2TT|Birmingham
            M13 9PL|Manchester
            SE1 7EH|London
            LS2 9JT|Leeds
            G12 8QQ|Glasgow
            N7 8DB|London
            L69 3BX|Liverpool
            S10 2TN|Sheffield
            BS8 1TH|Bristol
            W12 0NN|London
            EH8 9YL|Edinburgh
            NE1 7RU|Newcastle upon Tyne
            NG7 2RD|Nottingham
            CF10 3AT|Cardiff
            LE1 7RH|Leicester
            CB2 0QQ|Cambridge
            OX3 9DU|Oxford
            BT9 7BL|Belfast
        """,
        "US": """
            10025|New York|NY
            11226|Brooklyn|NY
            60629|Chicago|IL
            90011|Los Angeles|CA
            77084|Houston|TX
            85032|Phoenix|AZ
            19120|Philadelphia|PA
            78245|San Antonio|TX
            92154|San Diego|CA
            75217|Dallas|TX
            95123|San Jose|CA
            78704|Austin|TX
            32210|Jacksonville|FL
            02124|Boston|MA
            98103|Seattle|WA
            80219|Denver|CO
            20011|Washington|DC
            37211|Nashville|TN
            97229|Portland|OR
            48228|Detroit|MI
        """,
        "DE": """
            10115|Berlin
            12043|Berlin
            20095|Hamburg
            80331|München
            10247|Berlin
            50667|Köln
            60311|Frankfurt am Main
            22765|Hamburg
            70173|Stuttgart
            40210|Düsseldorf
            81543|München
            44135|Dortmund
            45127|Essen
            04109|Leipzig
            28195|Bremen
            01067|Dresden
            30159|Hannover
            90402|Nürnberg
            47051|Duisburg
            69117|Heidelberg
        """,
        "ES": """
            28013|Madrid
            08001|Barcelona
            28045|Madrid
            46001|Valencia
            41001|Sevilla
            08025|Barcelona
            50001|Zaragoza
            29001|Málaga
            28038|Madrid
            30001|Murcia
            07001|Palma
            35001|Las Palmas de Gran Canaria
            48001|Bilbao
            03001|Alicante
            14001|Córdoba
            47001|Valladolid
            36201|Vigo
            33201|Gijón
            18001|Granada
            15001|A Coruña
        """,
        "FR": """
            75011|Paris
            75015|Paris
            13001|Marseille
            69003|Lyon
            75018|Paris
            31000|Toulouse
            06000|Nice
            44000|Nantes
            67000|Strasbourg
            34000|Montpellier
            33000|Bordeaux
            59000|Lille
            35000|Rennes
            51100|Reims
            76600|Le Havre
            42000|Saint-Étienne
            83000|Toulon
            38000|Grenoble
            21000|Dijon
            49000|Angers
        """,
        "IT": """
            00118|Roma
            20121|Milano
            80121|Napoli
            00165|Roma
            10121|Torino
            20146|Milano
            90133|Palermo
            16121|Genova
            40121|Bologna
            50122|Firenze
            70121|Bari
            95121|Catania
            30121|Venezia
            37121|Verona
            98122|Messina
            35121|Padova
            34121|Trieste
            25121|Brescia
            43121|Parma
            09124|Cagliari
        """,
        "NL": """
            1011 AB|Amsterdam
            3011 AD|Rotterdam
            1055 CD|Amsterdam
            2511 CV|Den Haag
            3511 AX|Utrecht
            3071 AB|Rotterdam
            5611 AB|Eindhoven
            9711 AA|Groningen
            5038 AB|Tilburg
            1314 AB|Almere
            4811 AA|Breda
            6511 AA|Nijmegen
            7511 AA|Enschede
            2011 AA|Haarlem
            6811 AA|Arnhem
            8011 AA|Zwolle
            2311 AA|Leiden
            6211 AA|Maastricht
            3811 AA|Amersfoort
            5211 AA|'s-Hertogenbosch
        """,
    }.items()
}
